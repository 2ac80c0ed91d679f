//! TLS for the tests: a private CA and a server certificate for
//! `localhost` and 127.0.0.1 signed by it, made with `openssl`; a second CA
//! that signed nothing, to be refused; and Debian's `stunnel4` putting TLS
//! in front of a local plaintext server (a Kafka mock broker, a webhook
//! receiver). `scripts/test` installs both programs.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{free_port, which};

/// Certificates in a temp dir of their own.
pub struct Certs {
    /// Holds the files.
    _dir: tempfile::TempDir,
    /// The CA that signed `cert` (PEM).
    pub ca: PathBuf,
    /// The server certificate: `localhost`, 127.0.0.1.
    pub cert: PathBuf,
    /// Its key (unencrypted PEM).
    pub key: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let bin = which(&["openssl"]);
    let out = Command::new(&bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl req` with a new EC P-256 key (unencrypted) and `args`.
fn new_key_and(dir: &Path, args: &[&str]) {
    let mut all = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    all.extend_from_slice(args);
    openssl(dir, &all);
}

/// A new CA, and a server certificate for `localhost` and 127.0.0.1 that
/// it signed (EC P-256, valid for two days).
pub fn certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for ca in ["ca", "other-ca"] {
        let (key, pem, subject) = (
            format!("{ca}.key"),
            format!("{ca}.pem"),
            format!("/CN=okrd test {ca}"),
        );
        new_key_and(
            d,
            &[
                "-x509",
                "-keyout",
                &key,
                "-out",
                &pem,
                "-days",
                "2",
                "-subj",
                &subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }
    std::fs::write(
        d.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    new_key_and(
        d,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    Certs {
        ca: d.join("ca.pem"),
        cert: d.join("server.pem"),
        key: d.join("server.key"),
        other_ca: d.join("other-ca.pem"),
        _dir: dir,
    }
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// stunnel: TLS (with [`Certs::cert`]) on `port`, in front of the
/// plaintext server at 127.0.0.1:`backend`; stopped when dropped.
pub struct Stunnel {
    child: Child,
    /// The TLS port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Stunnel {
    /// Starts stunnel in front of `backend` and waits until it listens.
    pub fn start(certs: &Certs, backend: u16) -> Stunnel {
        let bin = which(&["stunnel4", "stunnel"]);
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("stunnel.conf");
        std::fs::write(
            &config,
            format!(
                "foreground = yes\npid =\ndebug = warning\n[tls]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend}\ncert = {}\nkey = {}\n",
                certs.cert.display(),
                certs.key.display()
            ),
        )
        .unwrap();
        let child = Command::new(&bin)
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let stunnel = Stunnel {
            child,
            port,
            _dir: dir,
        };
        wait_for_port(port, "stunnel");
        stunnel
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
