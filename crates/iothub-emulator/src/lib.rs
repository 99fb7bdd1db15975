//! `iothub-emulator`: a local Azure IoT Hub for device development and tests.
//!
//! Work in progress: see the repository README for status.
