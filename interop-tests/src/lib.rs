//! Namespaces, veth pairs and drivers for real BGP daemons, for tests and the lab.
