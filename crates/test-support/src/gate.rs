//! A TCP forwarder a test can close and open, to take a real dependency (NATS)
//! away from the services and give it back, without touching the shared server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const HANGING: u8 = 2;

pub struct TcpGate {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl TcpGate {
    pub async fn start(target: SocketAddr) -> TcpGate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(OPEN));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (current, tracked) = (mode.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let forward = match current.load(Ordering::SeqCst) {
                    CLOSED => continue, // dropped at once: the peer sees a reset or EOF
                    // Held open, never answered: a wedged server.
                    HANGING => tokio::spawn(async move {
                        let _held = inbound;
                        std::future::pending::<()>().await
                    }),
                    _ => tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    }),
                };
                tracked.lock().unwrap().push(forward.abort_handle());
            }
        })
        .abort_handle();
        TcpGate {
            addr,
            mode,
            connections,
            accept,
        }
    }

    /// Cuts every connection and refuses new ones until `open`.
    pub fn close(&self) {
        self.mode.store(CLOSED, Ordering::SeqCst);
        self.cut_connections();
    }

    /// Cuts every connection; new ones are accepted and never answered.
    pub fn hang(&self) {
        self.mode.store(HANGING, Ordering::SeqCst);
        self.cut_connections();
    }

    pub fn open(&self) {
        self.mode.store(OPEN, Ordering::SeqCst);
    }

    fn cut_connections(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

impl Drop for TcpGate {
    fn drop(&mut self) {
        self.close();
        self.accept.abort();
    }
}
