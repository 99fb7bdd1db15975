//! The hub domain: identities and authentication, telemetry, and (helper H3b) twins, C2D,
//! direct methods and DPS. No sockets here.
