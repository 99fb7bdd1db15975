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

/// A failure inside the library: the error side of every internal `Result`, with the same
/// values as the matching `IOTHUB_ERROR_*` codes and no 0. Without a 0 the compiler keeps
/// `Ok(())` at 0 (it places the niche below 1), so [`status`] returns the bits it was given:
/// no conversion at each of the entry points (measured, BENCHMARKS.md "C API code size").
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    NullArgument = 1,
    InvalidArgument = 2,
    BufferTooSmall = 3,
    TopicNoMatch = 4,
    Malformed = 5,
    SignFailed = 6,
    NotFound = 7,
    NotInitialized = 8,
}

impl From<Failure> for iothub_result {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::NullArgument => IOTHUB_ERROR_NULL_ARGUMENT,
            Failure::InvalidArgument => IOTHUB_ERROR_INVALID_ARGUMENT,
            Failure::BufferTooSmall => IOTHUB_ERROR_BUFFER_TOO_SMALL,
            Failure::TopicNoMatch => IOTHUB_ERROR_TOPIC_NO_MATCH,
            Failure::Malformed => IOTHUB_ERROR_MALFORMED,
            Failure::SignFailed => IOTHUB_ERROR_SIGN_FAILED,
            Failure::NotFound => IOTHUB_ERROR_NOT_FOUND,
            Failure::NotInitialized => IOTHUB_ERROR_NOT_INITIALIZED,
        }
    }
}

impl From<BufferTooSmall> for Failure {
    fn from(_: BufferTooSmall) -> Self {
        Failure::BufferTooSmall
    }
}

impl From<TopicError> for Failure {
    fn from(error: TopicError) -> Self {
        match error {
            TopicError::Unrecognized => Failure::TopicNoMatch,
            _ => Failure::Malformed,
        }
    }
}

/// Turns an internal `Result` into the value returned to C.
pub(crate) fn status(result: Result<(), Failure>) -> iothub_result {
    match result {
        Ok(()) => IOTHUB_OK,
        Err(failure) => failure.into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    const FAILURES: [Failure; 8] = [
        Failure::NullArgument,
        Failure::InvalidArgument,
        Failure::BufferTooSmall,
        Failure::TopicNoMatch,
        Failure::Malformed,
        Failure::SignFailed,
        Failure::NotFound,
        Failure::NotInitialized,
    ];

    /// Each failure becomes the code with its own value, so `status` returns the bits
    /// it holds; and the one with each value.
    #[test]
    fn every_failure_keeps_its_value() {
        for failure in FAILURES {
            let code = iothub_result::from(failure);
            assert_eq!(code as i32, failure as i32, "{failure:?}");
            assert_ne!(code, IOTHUB_OK);
            assert_eq!(status(Err(failure)), code);
        }
        assert_eq!(status(Ok(())), IOTHUB_OK);
    }

    /// The layout the size relies on: `Ok(())` is 0 in one `int` (if a compiler placed it
    /// elsewhere the results stay right, only the code grows; this says so).
    #[test]
    fn ok_is_zero_in_one_int() {
        assert_eq!(
            core::mem::size_of::<Result<(), Failure>>(),
            core::mem::size_of::<i32>()
        );
        // SAFETY: same size (asserted above), and every bit pattern read is a valid i32.
        let ok: i32 = unsafe { core::mem::transmute::<Result<(), Failure>, i32>(Ok(())) };
        assert_eq!(ok, 0);
    }
}
