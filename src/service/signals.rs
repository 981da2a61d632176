//! SIGINT and SIGTERM, listened for from the first moment of `serve`: until a listener is
//! installed, either one kills the process outright, without draining requests in flight or
//! saving the views. A listener installed by a task spawned at the end of the start missed
//! a stop sent just after `listening on` (exit 143 under load).

/// Which stop signal came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StopSignal {
    Interrupt,
    Terminate,
}

impl StopSignal {
    /// What a shell reports for a process this signal ended: 128 and its number.
    pub(super) fn exit_code(self) -> i32 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }
}

/// The stop signals, each caught from its creation on, also while nothing waits for it.
pub(super) struct StopSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Installs the listeners; one that cannot be installed leaves its signal's default (to
    /// end the process), with a warning.
    pub(super) fn listen() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let listener = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(listener) => Some(listener),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for {name}; it stops the service at once");
                    None
                }
            };
            StopSignals {
                interrupt: listener(SignalKind::interrupt(), "SIGINT"),
                terminate: listener(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// Waits for the next stop signal (including one that came before this call).
    pub(super) async fn recv(&mut self) -> StopSignal {
        #[cfg(unix)]
        {
            async fn next(listener: &mut Option<tokio::signal::unix::Signal>) {
                match listener {
                    Some(listener) => {
                        listener.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(&mut self.interrupt) => StopSignal::Interrupt,
                () = next(&mut self.terminate) => StopSignal::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            StopSignal::Interrupt
        }
    }
}
