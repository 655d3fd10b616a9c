//! IP address management on a durable block pool.
