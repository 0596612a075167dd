//! One module per subcommand: `Args` (clap) and `run`.

pub mod add;
pub mod apps;
pub mod bars;
pub mod diff;
pub mod du;
pub mod export;
pub mod gc;
pub mod import;
pub mod inventory;
pub mod key;
pub mod ls;
pub mod names;
pub mod serve;
pub mod verify;
