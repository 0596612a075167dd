//! One module per subcommand: `Args` (clap) and `run`.

pub mod add;
pub mod du;
pub mod gc;
pub mod ls;
pub mod serve;
pub mod verify;
