//! `iothub-device`: an async Azure IoT Hub device client over plain MQTT.
//!
//! Work in progress: see the repository README for status.
