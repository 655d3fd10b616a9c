//! Kernel FIB programming over rtnetlink.
