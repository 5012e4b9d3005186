//! Print every bucket of a database file with its key count (and keys/values in hex with
//! `-v`), then the result of `Db::check`. Usage: `dump <file> [-v]`.

use cairn_engine::{Db, Options};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: dump <file> [-v]");
        std::process::exit(2);
    };
    let verbose = args.iter().any(|a| a == "-v");
    let db = match Db::open(
        path,
        Options {
            read_only: true,
            ..Options::default()
        },
    ) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("open {path}: {e}");
            std::process::exit(1);
        }
    };
    let tx = db.begin_read().expect("begin_read");
    for name in tx.bucket_names() {
        let b = tx.bucket(name).expect("listed bucket");
        let mut c = b.cursor();
        let mut n = 0usize;
        let mut item = c.first();
        while let Some((k, v)) = item {
            if verbose {
                println!("  {} = {}", hex(k), hex(v));
            }
            n += 1;
            item = c.next();
        }
        println!(
            "bucket {} ({}): {n} keys",
            String::from_utf8_lossy(name),
            hex(name)
        );
    }
    println!("stats: {:?}", db.stats());
    let errs = db.check();
    println!("check: {} errors", errs.len());
    for e in errs.iter().take(20) {
        println!("  {e}");
    }
}
