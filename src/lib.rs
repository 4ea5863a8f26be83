//! socketlab's small shared library: only what two or more programs use, each
//! module's header naming them. What one program needs lives in `src/bin/<program>/`.

pub mod cli;
pub mod connect;
pub mod deadline;
pub mod explain;
pub mod limit;
pub mod listen;
pub mod log;
pub mod printable;
pub mod random;
pub mod rtt;
pub mod time_service;
