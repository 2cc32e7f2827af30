//! The one classification trait, its defaults, and how layers ask it.

use std::error::Error;
use std::fmt;

use crate::verdict::Verdict;

/// `tower`'s boxed error.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// What an error says about itself: the one vocabulary every layer reads.
///
/// Implemented here for `std::io::Error`, [`BoxError`] and `Infallible`, by
/// `towerguard-llm-core` for `LlmError` (the design's table), and by each layer's refusal
/// error. Implement it for your own error types; layers that cannot find one use
/// [`ClassifyFn`].
pub trait ClassifyError {
    /// The verdict for this error.
    fn verdict(&self) -> Verdict;

    /// A short label for statistics (e.g. the error kind). Default: the verdict's label.
    fn label(&self) -> &'static str {
        self.verdict().label()
    }
}

/// An error's verdict, placed in its [`source`](Error::source) chain so that the verdict
/// survives boxing: the [`BoxError`] and `io::Error` defaults find it there. Every refusal
/// error of our layers and `LlmError` carry one; give your own error types one to be
/// classified inside a `BoxError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared(pub Verdict);

impl fmt::Display for Declared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "classified as {}", self.0.label())
    }
}

impl Error for Declared {}

/// The verdict an error declares in its source chain (itself included), if any.
pub fn declared_verdict(error: &(dyn Error + 'static)) -> Option<Verdict> {
    let mut cur = Some(error);
    while let Some(e) = cur {
        if let Some(d) = e.downcast_ref::<Declared>() {
            return Some(d.0);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            // its payload's declared verdict if it has one, else its kind's
            return Some(io.verdict());
        }
        cur = e.source();
    }
    None
}

fn io_verdict(kind: std::io::ErrorKind) -> Verdict {
    use std::io::ErrorKind::*;
    match kind {
        TimedOut | Interrupted | ConnectionRefused | ConnectionReset | ConnectionAborted
        | NotConnected | BrokenPipe | UnexpectedEof | WouldBlock | AddrNotAvailable
        | NetworkUnreachable | HostUnreachable | NetworkDown => Verdict::transient(),
        InvalidInput | InvalidData => Verdict::client_fault(),
        // an upstream that answered, but not usefully: not retried, still a breaker failure
        _ => Verdict::Upstream(crate::Failure {
            retryable: false,
            unhealthy: true,
            fallback: true,
            retry_after: None,
        }),
    }
}

/// Transient kinds (timeouts, resets, refused connections) are transient upstream failures;
/// `InvalidInput` / `InvalidData` the client's fault; other kinds upstream failures that are
/// not retried. An `io::Error` wrapping an error with a [`Declared`] verdict has that verdict
/// (so another layer's refusal stays a refusal).
impl ClassifyError for std::io::Error {
    fn verdict(&self) -> Verdict {
        match self.get_ref() {
            Some(inner) => declared_verdict(inner).unwrap_or_else(|| io_verdict(self.kind())),
            None => io_verdict(self.kind()),
        }
    }
}

/// The verdict declared in the error's source chain ([`Declared`]; `LlmError` and our layers'
/// refusals declare one), else a transient upstream failure: an unknown error is never the
/// client's fault.
impl ClassifyError for BoxError {
    fn verdict(&self) -> Verdict {
        declared_verdict(&**self).unwrap_or(Verdict::transient())
    }
}

impl ClassifyError for std::convert::Infallible {
    fn verdict(&self) -> Verdict {
        match *self {}
    }
}

/// How a layer classifies a whole result.
pub trait Classify<Res, E> {
    /// The verdict for this result.
    fn classify(&self, result: &Result<Res, E>) -> Verdict;

    /// A short label for statistics.
    fn label(&self, result: &Result<Res, E>) -> &'static str {
        self.classify(result).label()
    }
}

/// The default: a response is a success; an error is asked ([`ClassifyError`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassify;

impl<Res, E: ClassifyError> Classify<Res, E> for DefaultClassify {
    #[inline]
    fn classify(&self, result: &Result<Res, E>) -> Verdict {
        match result {
            Ok(_) => Verdict::Success,
            Err(e) => e.verdict(),
        }
    }

    fn label(&self, result: &Result<Res, E>) -> &'static str {
        match result {
            Ok(_) => Verdict::Success.label(),
            Err(e) => e.label(),
        }
    }
}

/// A classifier from a closure over the whole result.
#[derive(Clone, Copy)]
pub struct ClassifyFn<F>(pub F);

impl<F> fmt::Debug for ClassifyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClassifyFn")
    }
}

impl<Res, E, F> Classify<Res, E> for ClassifyFn<F>
where
    F: Fn(&Result<Res, E>) -> Verdict,
{
    fn classify(&self, result: &Result<Res, E>) -> Verdict {
        (self.0)(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug)]
    struct Refused(Declared);
    impl fmt::Display for Refused {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("refused")
        }
    }
    impl Error for Refused {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_boxed_refusal_stays_a_refusal_and_unknown_errors_are_upstream() {
        let refused: BoxError = Box::new(Refused(Declared(Verdict::refused())));
        assert!(refused.verdict().is_refusal());
        assert!(!refused.verdict().is_retryable());
        assert!(!refused.verdict().is_client_fault());

        let wrapped = std::io::Error::other(Refused(Declared(Verdict::refused())));
        assert!(wrapped.verdict().is_refusal());

        let unknown: BoxError = "something odd".into();
        let v = unknown.verdict();
        assert!(v.is_retryable() && v.counts_for_breaker() && !v.is_client_fault());
    }

    #[test]
    fn io_kinds() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(reset.verdict(), Verdict::transient());
        let bad = std::io::Error::from(std::io::ErrorKind::InvalidInput);
        assert!(bad.verdict().is_client_fault());
        let boxed: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(boxed.verdict().is_retryable());
        // an io error with a message keeps its kind's verdict inside a BoxError
        let boxed: BoxError = Box::new(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "bad field",
        ));
        assert!(boxed.verdict().is_client_fault());
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!denied.verdict().is_retryable() && denied.verdict().counts_for_breaker());
    }

    #[test]
    fn verdict_parts() {
        let v = Verdict::transient_after(Duration::from_secs(3));
        assert_eq!(v.retry_after(), Some(Duration::from_secs(3)));
        assert!(Verdict::permanent().should_fallback());
        assert!(!Verdict::permanent().counts_for_breaker());
        assert!(!Verdict::refused().should_fallback());
        assert!(!Verdict::Success.should_fallback());
        assert_eq!(
            Verdict::refused()
                .with_retry_after(Some(Duration::from_secs(1)))
                .retry_after(),
            Some(Duration::from_secs(1))
        );
        let by_closure = ClassifyFn(|r: &Result<(), ()>| {
            if r.is_ok() {
                Verdict::Success
            } else {
                Verdict::client_fault()
            }
        });
        assert!(by_closure.classify(&Err(())).is_client_fault());
    }
}
