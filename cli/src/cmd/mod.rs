//! One module per subcommand: `Args` (clap) and `run`.

pub mod du;
pub mod gc;
pub mod serve;
pub mod verify;
