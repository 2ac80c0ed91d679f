//! A TCP proxy that a test can cut: while cut, it closes every connection
//! it carries and refuses new ones (accepts and closes them), as a network
//! partition between okrd and its database would.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy to one target.
pub struct Proxy {
    /// `127.0.0.1:PORT` it listens on.
    pub addr: std::net::SocketAddr,
    cut: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Proxies a free local port to `target` (`host:port`).
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(watch::Sender::new(false));
        let target = target.to_string();
        let state = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if *state.borrow() {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut cut = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy { addr, cut, task }
    }

    /// Cuts (`true`) or restores (`false`) the connection.
    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
