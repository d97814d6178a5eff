//! The GSM modem: AT command framing, the driver task that owns the serial port, and the
//! simulator (`pasarela modem-sim`) used by tests and the demo.

pub mod at;
pub mod driver;
pub mod gsm;
pub mod port;
pub mod sim;
pub mod ussd;
