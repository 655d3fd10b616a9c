//! Sessions: the only code that owns sockets.
