//! The distributed form under test: [`Cluster`] runs `scripts/cluster.sh up` on ports, a
//! Redis, a MongoDB and a DynamoDB server, a PostgreSQL database and a state directory of
//! its own, and `down` when dropped (also when a test panics), so that a test binary can
//! restart its Redis or kill its processes without touching anything else on the machine.
//!
//! The service binaries are the debug builds beside the test executable (`.ci/run` builds
//! them with `cargo build --workspace --bins` before `cargo test`): a nested cargo build
//! would wait for the lock the running `cargo test` holds.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use service_kit::auth::ServiceCredential;
use service_kit::client::ServiceClient;
use test_support::backend::{REQUIRE_BACKENDS, backends_required, unique_name};

/// The service binaries `scripts/cluster.sh` starts.
pub const BINARIES: [&str; 6] = [
    "auth-service",
    "message-service",
    "matching-service",
    "ws-manager",
    "ws-handler",
    "gateway",
];

/// The ws-handler instances, by name in `scripts/cluster.sh`, and their port offsets.
pub const WS_HANDLERS: [(&str, u16); 2] = [("ws-handler-1", 10), ("ws-handler-2", 11)];

/// How long every instance may take to answer `/readyz` after `up`.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Offsets from the port base of the gateway's own listeners and of the backends the
/// cluster starts for itself.
const OPERATOR_OFFSET: u16 = 1000;
const REDIS_OFFSET: u16 = 20;
const MONGODB_OFFSET: u16 = 21;
const DYNAMODB_OFFSET: u16 = 22;
/// Every port offset the cluster listens on.
const OFFSETS: [u16; 12] = [
    0,
    1,
    2,
    3,
    4,
    5,
    10,
    11,
    REDIS_OFFSET,
    MONGODB_OFFSET,
    DYNAMODB_OFFSET,
    OPERATOR_OFFSET,
];

/// Why the cluster could not be driven.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `scripts/cluster.sh` could not be run at all.
    #[error("running scripts/cluster.sh {command}: {source}")]
    Spawn {
        /// The sub-command.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `scripts/cluster.sh` failed.
    #[error("scripts/cluster.sh {command} failed ({status}):\n{output}")]
    Script {
        /// The sub-command.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed.
        output: String,
    },
    /// No free range of ports was found.
    #[error("no free range of ports for a cluster")]
    NoPorts,
    /// A file of the cluster could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What a cluster needs that the machine must provide: where the binaries are.
#[derive(Debug, Clone)]
pub struct Prerequisites {
    /// The directory holding every binary of [`BINARIES`].
    pub bin_dir: PathBuf,
}

impl Prerequisites {
    /// The binaries beside the running test and the backends' programs, or `None` after
    /// printing why the calling test skips.
    ///
    /// # Panics
    /// When something is missing and `RC_REQUIRE_BACKENDS=1`.
    pub fn check() -> Option<Self> {
        match Self::find() {
            Ok(found) => Some(found),
            Err(reason) => {
                if backends_required() {
                    panic!("{reason}, but {REQUIRE_BACKENDS}=1: the cluster is required");
                }
                eprintln!("skipping: {reason}, so the cluster tests cannot run");
                None
            }
        }
    }

    fn find() -> Result<Self, String> {
        let bin_dir = std::env::var_os("RC_CLUSTER_BIN_DIR")
            .map(PathBuf::from)
            .or_else(profile_dir)
            .ok_or("the target directory of the test executable is unknown")?;
        let missing: Vec<&str> = BINARIES
            .iter()
            .copied()
            .filter(|b| !bin_dir.join(b).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} missing in {} (build them first: cargo build --workspace --bins)",
                missing.join(", "),
                bin_dir.display()
            ));
        }
        for program in ["redis-server", "redis-cli", "pg_isready", "psql", "curl"] {
            if !on_path(program) {
                return Err(format!("{program} is not installed"));
            }
        }
        let venv = venv();
        for program in ["secantusd-py", "moto_server"] {
            if !venv.join("bin").join(program).is_file() {
                return Err(format!(
                    "{program} is not installed in {} (see .ci/run)",
                    venv.display()
                ));
            }
        }
        let postgres = Command::new("pg_isready")
            .args(["-h", "127.0.0.1", "-p", "5432", "-q"])
            .status()
            .is_ok_and(|s| s.success());
        if !postgres {
            return Err("PostgreSQL is not listening on 127.0.0.1:5432".to_owned());
        }
        Ok(Self { bin_dir })
    }
}

/// `target/<profile>` of the running test executable (`target/<profile>/deps/<test>`).
fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    (deps.file_name()? == "deps").then(|| deps.parent().map(Path::to_path_buf))?
}

fn venv() -> PathBuf {
    std::env::var_os("RC_CLUSTER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/rc-ci-venv"))
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cluster-tests sits in the workspace")
        .to_path_buf()
}

/// The PEM files of a certificate for the gateway.
#[derive(Clone)]
pub struct TlsPair {
    /// The certificate chain.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPair")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A running cluster; `down` when dropped.
#[derive(Debug)]
pub struct Cluster {
    state: PathBuf,
    base: u16,
    database: String,
    /// The settings of `scripts/cluster.sh` (the service token apart).
    env: Vec<(String, String)>,
    token: ServiceCredential,
    tls: bool,
    /// Every process `up` started, ever (a restarted one adds its new PID).
    started: BTreeMap<String, Vec<u32>>,
    down: bool,
}

impl Cluster {
    /// Starts the whole topology and waits until every instance is ready; with `tls`, the
    /// gateway serves HTTPS and WSS with that certificate.
    pub fn up(prerequisites: &Prerequisites, tls: Option<&TlsPair>) -> Result<Self, ClusterError> {
        let base = free_base()?;
        let state = std::env::temp_dir().join(unique_name("rc-cluster-test"));
        std::fs::create_dir_all(&state).map_err(|source| ClusterError::Write {
            path: state.clone(),
            source,
        })?;
        let database = unique_name("rc_cluster_test");
        let token = ServiceCredential::random();
        let mut env: Vec<(String, String)> = vec![
            ("RC_CLUSTER_DIR".into(), state.display().to_string()),
            (
                "RC_CLUSTER_BIN_DIR".into(),
                prerequisites.bin_dir.display().to_string(),
            ),
            ("RC_CLUSTER_PORT_BASE".into(), base.to_string()),
            ("RC_CLUSTER_POSTGRES_DB".into(), database.clone()),
            (
                "RC_CLUSTER_REDIS_PORT".into(),
                (base + REDIS_OFFSET).to_string(),
            ),
            (
                "RC_CLUSTER_MONGODB_PORT".into(),
                (base + MONGODB_OFFSET).to_string(),
            ),
            (
                "RC_CLUSTER_DYNAMODB_PORT".into(),
                (base + DYNAMODB_OFFSET).to_string(),
            ),
            ("RC_CLUSTER_VENV".into(), venv().display().to_string()),
        ];
        if let Some(pair) = tls {
            for (name, var, pem) in [
                ("gateway-cert.pem", "RC_CLUSTER_TLS_CERT", &pair.cert_pem),
                ("gateway-key.pem", "RC_CLUSTER_TLS_KEY", &pair.key_pem),
            ] {
                let path = state.join(name);
                std::fs::write(&path, pem).map_err(|source| ClusterError::Write {
                    path: path.clone(),
                    source,
                })?;
                env.push((var.into(), path.display().to_string()));
            }
        }
        let mut cluster = Self {
            state,
            base,
            database,
            env,
            token,
            tls: tls.is_some(),
            started: BTreeMap::new(),
            down: false,
        };
        // From here on, a failure still goes through Drop: down and clean-up.
        cluster.start()?;
        Ok(cluster)
    }

    /// Runs `up` again: starts whatever is not running (a killed instance, a stopped
    /// backend) and waits until every instance is ready.
    pub fn start(&mut self) -> Result<(), ClusterError> {
        let started = Instant::now();
        self.script(&["up"])?;
        // `up` leaves an instance that was running alone; after a backend restart it may
        // still be finding its way back, so wait until every one answers /readyz.
        let deadline = Instant::now() + READY_WITHIN;
        while let Err(err) = self.script(&["status"]) {
            if Instant::now() >= deadline {
                return Err(err);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "cluster on port base {} up in {:.1} s",
            self.base,
            started.elapsed().as_secs_f64()
        );
        for (name, pid) in self.pids()? {
            let pids = self.started.entry(name).or_default();
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        Ok(())
    }

    /// Runs `scripts/cluster.sh` with this cluster's settings; what it printed.
    pub fn script(&self, args: &[&str]) -> Result<String, ClusterError> {
        let command = args.join(" ");
        let output = Command::new("bash")
            .arg(root().join("scripts/cluster.sh"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RC_SERVICE_TOKEN", self.token.expose())
            .output()
            .map_err(|source| ClusterError::Spawn {
                command: command.clone(),
                source,
            })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() {
            Ok(text)
        } else {
            Err(ClusterError::Script {
                command,
                status: output.status,
                output: text,
            })
        }
    }

    /// Every running process `up` started: name → PID.
    pub fn pids(&self) -> Result<BTreeMap<String, u32>, ClusterError> {
        Ok(self
            .script(&["pids"])?
            .lines()
            .filter_map(|line| {
                let (name, pid) = line.split_once(' ')?;
                Some((name.to_owned(), pid.trim().parse().ok()?))
            })
            .collect())
    }

    /// The PID of the running process `name` (an instance or a backend `up` started).
    pub fn pid(&self, name: &str) -> Result<Option<u32>, ClusterError> {
        Ok(self.pids()?.get(name).copied())
    }

    /// Sends `signal` (e.g. `KILL`) to the running process `name`; false when none runs.
    pub fn signal(&self, name: &str, signal: &str) -> Result<bool, ClusterError> {
        let Some(pid) = self.pid(name)? else {
            return Ok(false);
        };
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .map_err(|source| ClusterError::Spawn {
                command: format!("kill -{signal} {pid}"),
                source,
            })?;
        Ok(status.success())
    }

    /// The gateway's public base URL (`https://localhost:…` when TLS is on, the name the
    /// test certificate carries).
    pub fn gateway_url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.base)
        } else {
            format!("http://127.0.0.1:{}", self.base)
        }
    }

    /// The gateway's public port.
    pub fn gateway_port(&self) -> u16 {
        self.base
    }

    /// The port of the cluster's own Redis.
    pub fn redis_port(&self) -> u16 {
        self.base + REDIS_OFFSET
    }

    /// The base URL ws-handler `name` registers as its public URL.
    pub fn ws_handler_url(&self, name: &str) -> Option<String> {
        WS_HANDLERS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, offset)| format!("http://127.0.0.1:{}", self.base + offset))
    }

    /// A client of ws-manager's internal API, presenting the cluster's service token.
    pub fn ws_manager(&self) -> ServiceClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a plain HTTP client builds");
        ServiceClient::http(
            "ws-manager",
            http,
            &format!("http://127.0.0.1:{}", self.base + 4),
            Some(self.token.clone()),
        )
    }

    /// Stops everything `up` started, then checks that none of those processes is left
    /// and drops the cluster's database.
    pub fn down(&mut self) -> Result<Vec<String>, ClusterError> {
        if self.down {
            return Ok(Vec::new());
        }
        self.down = true;
        // Whatever runs now counts too (a process started by a later `up`).
        if let Ok(now) = self.pids() {
            for (name, pid) in now {
                let pids = self.started.entry(name).or_default();
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
        let result = self.script(&["down"]);
        let left: Vec<String> = self
            .started
            .iter()
            .flat_map(|(name, pids)| pids.iter().map(move |pid| (name, *pid)))
            .filter(|(_, pid)| running(*pid))
            .map(|(name, pid)| format!("{name} (pid {pid})"))
            .collect();
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                "5432",
                "-U",
                "root",
                "-d",
                "postgres",
                "-qc",
            ])
            .arg(format!("DROP DATABASE IF EXISTS \"{}\"", self.database))
            .output();
        if left.is_empty() && result.is_ok() {
            let _ = std::fs::remove_dir_all(&self.state);
        } else {
            eprintln!("the cluster's logs stay in {}", self.state.display());
        }
        result.map(|_| left)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        match self.down() {
            Ok(left) if left.is_empty() => {}
            Ok(left) => eprintln!("cluster down left processes behind: {left:?}"),
            Err(err) => eprintln!("cluster down failed: {err}"),
        }
    }
}

/// Whether `pid` is a live process (a zombie, which has no command line, is not).
pub fn running(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

/// A port base whose every port (see [`OFFSETS`]) is free now. Bases lie in
/// 20000..21000 and their operator ports in 21000..22000, so two bases never overlap.
fn free_base() -> Result<u16, ClusterError> {
    const FIRST: u16 = 20_000;
    const STEP: u16 = 40;
    const COUNT: u16 = 25;
    let start = (std::process::id() % u32::from(COUNT)) as u16;
    (0..COUNT)
        .map(|i| FIRST + ((start + i) % COUNT) * STEP)
        .find(|base| {
            OFFSETS
                .iter()
                .all(|offset| TcpListener::bind(("127.0.0.1", base + offset)).is_ok())
        })
        .ok_or(ClusterError::NoPorts)
}

/// Polls `check` until it yields, failing with `what` after `within`.
pub async fn wait_until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
