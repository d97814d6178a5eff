//! The AT modem simulator (being built).
