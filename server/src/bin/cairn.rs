fn main() {
    eprintln!("cairn: the server is not built yet");
    std::process::exit(1);
}
