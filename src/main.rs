//! The `attache` binary: a thin shell over [`attache`]'s library, see `src/cli/`.

#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
