//! The one result type every C entry point returns (docs/c-api.md, "Errors").

use iothub_proto::BufferTooSmall;
use iothub_proto::topic::TopicError;

/// What a call did. `IOTHUB_OK` is 0; every other value is a distinct failure a caller can
/// branch on.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum iothub_result {
    /// Success.
    IOTHUB_OK = 0,
    /// A required pointer argument is NULL (or a span has a NULL pointer and a non-zero length).
    IOTHUB_ERROR_NULL_ARGUMENT = 1,
    /// An argument is out of range: text that is not UTF-8, an empty id, a key that is not
    /// base64, too many application properties.
    IOTHUB_ERROR_INVALID_ARGUMENT = 2,
    /// The output buffer is too small; `*out_len` (when given) holds the size needed,
    /// terminating NUL included. Nothing useful was written.
    IOTHUB_ERROR_BUFFER_TOO_SMALL = 3,
    /// The topic is not one of this kind (try another handler); not an error in a dispatcher.
    IOTHUB_ERROR_TOPIC_NO_MATCH = 4,
    /// The input has the right shape but is invalid (a topic without `$rid`, a connection
    /// string without `HostName`, JSON that does not parse).
    IOTHUB_ERROR_MALFORMED = 5,
    /// The caller's HMAC callback reported a failure.
    IOTHUB_ERROR_SIGN_FAILED = 6,
    /// No such item: the property iterator is exhausted, or a JSON member or property is absent.
    IOTHUB_ERROR_NOT_FOUND = 7,
    /// The state object was not initialised with its `_init` function.
    IOTHUB_ERROR_NOT_INITIALIZED = 8,
}

pub(crate) use iothub_result::*;

impl From<BufferTooSmall> for iothub_result {
    fn from(_: BufferTooSmall) -> Self {
        IOTHUB_ERROR_BUFFER_TOO_SMALL
    }
}

impl From<TopicError> for iothub_result {
    fn from(error: TopicError) -> Self {
        match error {
            TopicError::Unrecognized => IOTHUB_ERROR_TOPIC_NO_MATCH,
            _ => IOTHUB_ERROR_MALFORMED,
        }
    }
}

/// Turns an internal `Result` into the value returned to C.
pub(crate) fn status(result: Result<(), iothub_result>) -> iothub_result {
    match result {
        Ok(()) => IOTHUB_OK,
        Err(error) => error,
    }
}

/// The name of a result code as a static NUL-terminated string (`"IOTHUB_OK"`, …), or
/// `"IOTHUB_UNKNOWN_RESULT"` for a value that is not an `iothub_result`. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn iothub_result_name(result: i32) -> *const core::ffi::c_char {
    let name: &'static core::ffi::CStr = match result {
        0 => c"IOTHUB_OK",
        1 => c"IOTHUB_ERROR_NULL_ARGUMENT",
        2 => c"IOTHUB_ERROR_INVALID_ARGUMENT",
        3 => c"IOTHUB_ERROR_BUFFER_TOO_SMALL",
        4 => c"IOTHUB_ERROR_TOPIC_NO_MATCH",
        5 => c"IOTHUB_ERROR_MALFORMED",
        6 => c"IOTHUB_ERROR_SIGN_FAILED",
        7 => c"IOTHUB_ERROR_NOT_FOUND",
        8 => c"IOTHUB_ERROR_NOT_INITIALIZED",
        _ => c"IOTHUB_UNKNOWN_RESULT",
    };
    name.as_ptr()
}
