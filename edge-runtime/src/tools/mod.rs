//! What the `emotion-edge` subcommands other than `run` do, as library functions: classify
//! image files ([`classify_files`]), measure a bundle ([`bench`]), read the serial protocol
//! from the far end of the line ([`listen`]), time a model node by node ([`model_profile`]) and list the devices a Pi offers ([`devices`]).

pub mod bench;
pub mod classify_files;
pub mod devices;
pub mod listen;
pub mod model_profile;
