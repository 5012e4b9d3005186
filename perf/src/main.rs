fn main() {
    eprintln!("cairn-bench: not built yet");
    std::process::exit(1);
}
