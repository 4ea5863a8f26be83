//! socketlab's small shared library: only what two or more programs use.
//! Each module's own header names the programs that use it; a module only
//! one program needs lives next to that program (`src/bin/<program>/`).

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
pub mod udp;
