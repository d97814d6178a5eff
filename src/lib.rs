//! pasarela placeholder
