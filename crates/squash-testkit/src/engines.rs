//! Real appliers, started by the tests themselves and unpacking images into a tar of the root
//! filesystem they produce: Docker (a daemon of the test's own: no network, no systemd;
//! `docker load`, `docker create`, `docker export`), containerd (a daemon of its own; `ctr
//! images import`, `ctr images mount` of the overlayfs snapshot), podman (a store of its own;
//! `podman load`, `podman create`, `podman export`) and umoci (`umoci unpack`). The tars of a
//! directory are written by GNU tar with every xattr. [`unpacked`] reads such a tar into the
//! reference model, without what the engines add to every container.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::model::{Node, RootFs};

/// Runs `cmd`; its stdout, or a panic with its stderr.
pub fn output(cmd: &mut Command) -> Vec<u8> {
    try_output(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cmd`; its stdout, or what it printed on stderr when it failed.
pub fn try_output(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(out.stdout)
}

/// The first line of `tool --version`, for reports.
pub fn version(tool: &str) -> String {
    Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
        .unwrap_or_else(|| format!("{tool}: unknown version"))
}

/// What an applier unpacked: a tar of the root filesystem, and the entries a directory listing
/// showed that could not be opened (overlayfs lists a whiteout so when the directory holding it
/// is not merged with a lower one).
#[derive(Debug, Default)]
pub struct Unpacked {
    /// The root filesystem, as a tar.
    pub tar: Vec<u8>,
    /// Paths listed but not there, in byte order.
    pub unreadable: Vec<String>,
}

impl From<Vec<u8>> for Unpacked {
    fn from(tar: Vec<u8>) -> Unpacked {
        Unpacked { tar, unreadable: Vec::new() }
    }
}

/// A tar of the tree at `dir`, as GNU tar writes it (numeric owners, every xattr, hard links),
/// and the entries it listed and could not read.
pub fn tar_of(dir: &Path) -> Result<Unpacked, String> {
    let mut cmd = Command::new("tar");
    cmd.args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "--format=pax", "-C"])
        .arg(dir)
        .args(["-cf", "-", "."]);
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut unreadable = Vec::new();
    let mut other = Vec::new();
    for line in stderr.lines() {
        match line
            .strip_prefix("tar: ")
            .and_then(|l| l.strip_suffix(": File removed before we read it"))
        {
            Some(path) => unreadable.push(path.trim_start_matches("./").to_string()),
            None if line.contains("Exiting with failure status due to previous errors") => {}
            None => other.push(line),
        }
    }
    // GNU tar exits with 1 when files changed as it read them, 2 on other errors.
    if !other.is_empty()
        || !(out.status.success() || out.status.code() == Some(1) && !unreadable.is_empty())
    {
        return Err(format!("{cmd:?} failed: {}", stderr.trim()));
    }
    unreadable.sort();
    Ok(Unpacked { tar: out.stdout, unreadable })
}

/// What engines put into every container, and so into its export, whatever the image holds.
fn engine_made(path: &[u8]) -> bool {
    const FILES: &[&[u8]] = &[
        b".dockerenv",
        b"etc/hostname",
        b"etc/hosts",
        b"etc/resolv.conf",
        b"etc/mtab",
        b"run/.containerenv",
    ];
    const TREES: &[&[u8]] = &[b"dev", b"proc", b"sys"];
    FILES.contains(&path)
        || TREES
            .iter()
            .any(|t| path == *t || path.starts_with(t) && path.get(t.len()) == Some(&b'/'))
}

/// The root filesystem in an applier's tar (an export or [`tar_of`] an unpacked tree), read by
/// the reference model, without what engines add to every container (`/dev`, `/proc`, `/sys`,
/// `/etc/hosts` and the like) and without the root's own entry. `expected` says which of the
/// directories engines make (`/etc`, `/run`) the image itself has: those are kept.
///
/// An mtime at or after `since` (when the test began; no layer of a test says so late a time)
/// was set by the unpacking itself: it becomes [`UNPACKED_NOW`], so that two unpackings compare
/// equal there while both still differ from a layer's time.
pub fn unpacked(tar: &[u8], expected: &RootFs, since: u64) -> RootFs {
    let fs = RootFs::from_layers([tar]).expect("the applier's tar applies");
    fs.filter_map(|path, node| {
        let made_dir = (path == b"etc" || path == b"run") && !expected.nodes().contains_key(path);
        let mut node = keep(path, node).filter(|_| !made_dir)?;
        node.mtime = node.mtime.map(|t| if t >= since { UNPACKED_NOW } else { t });
        Some(node)
    })
}

/// The mtime [`unpacked`] gives what the unpacking itself dated.
pub const UNPACKED_NOW: u64 = u64::MAX;

/// Now, in seconds since the epoch: the `since` of [`unpacked`].
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What every applier must agree on: `fs` without the root's entry and without what engines
/// add (see [`unpacked`]).
pub fn comparable(fs: &RootFs) -> RootFs {
    fs.filter_map(keep)
}

/// The root as every unpacking starts it; nothing engines add.
fn keep(path: &[u8], node: &Node) -> Option<Node> {
    if path.is_empty() {
        return Some(RootFs::new().nodes()[&Vec::new()].clone());
    }
    (!engine_made(path)).then(|| node.clone())
}

/// A directory with a short path, for what has a length limit: unix sockets (108 bytes), and
/// podman's run root (50 characters). Under `/tmp` when there is one, whatever `TMPDIR` says.
fn short_dir(prefix: &str) -> tempfile::TempDir {
    let base =
        if Path::new("/tmp").is_dir() { PathBuf::from("/tmp") } else { std::env::temp_dir() };
    tempfile::Builder::new().prefix(prefix).tempdir_in(base).expect("a short temporary directory")
}

/// Starts a daemon with its output going to `log` and no standard input.
fn spawn_daemon(cmd: &mut Command, log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log");
    cmd.stdout(file.try_clone().expect("log"))
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn wait_for(what: &str, log: &Path, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not answer within 60 s:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// A Docker daemon of the test's own under `dir`, stopped and removed when dropped.
pub struct Docker {
    root: PathBuf,
    daemon: Child,
    host: String,
    /// Execution state and the socket.
    run: tempfile::TempDir,
}

impl Docker {
    /// Starts `dockerd` with no network setup (`--iptables=false --bridge=none`), overlay2, its
    /// data under `dir` (which it removes first), and its execution state and socket in a
    /// short temporary directory.
    pub fn start(dir: &Path) -> Docker {
        let root = dir.to_path_buf();
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("daemon dir");
        let run = short_dir("dockerd-");
        let socket = run.path().join("docker.sock");
        let log = root.join("dockerd.log");
        let daemon = spawn_daemon(
            Command::new("dockerd")
                .args([
                    "--iptables=false",
                    "--ip-forward=false",
                    "--bridge=none",
                    "--storage-driver=overlay2",
                ])
                .arg(format!("--data-root={}", root.join("root").display()))
                .arg(format!("--exec-root={}", run.path().join("exec").display()))
                .arg(format!("--pidfile={}", run.path().join("docker.pid").display()))
                .arg(format!("-H=unix://{}", socket.display())),
            &log,
        );
        let docker = Docker { root, daemon, host: format!("unix://{}", socket.display()), run };
        wait_for("dockerd", &log, || {
            docker.cmd().arg("version").output().is_ok_and(|o| o.status.success())
        });
        docker
    }

    /// A `docker` command talking to this daemon.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", &self.host);
        c
    }

    /// The daemon's address, for `DOCKER_HOST`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The daemon's version.
    pub fn version(&self) -> String {
        String::from_utf8_lossy(&output(self.cmd().args([
            "version",
            "--format",
            "{{.Server.Version}}",
        ])))
        .trim()
        .to_string()
    }

    /// `docker load -i archive`.
    pub fn load(&self, archive: &Path) -> Result<(), String> {
        try_output(self.cmd().args(["load", "-q", "-i"]).arg(archive)).map(drop)
    }

    /// The filesystem of a container created from `image`, as `docker export` writes it.
    pub fn export(&self, image: &str) -> Result<Vec<u8>, String> {
        let id = String::from_utf8_lossy(&try_output(self.cmd().args([
            "create",
            "--network",
            "none",
            image,
            "true",
        ]))?)
        .trim()
        .to_string();
        let tar = try_output(self.cmd().args(["export", &id]));
        output(self.cmd().args(["rm", &id]));
        tar
    }

    /// `docker rmi image`.
    pub fn remove(&self, image: &str) {
        output(self.cmd().args(["rmi", "-f", image]));
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        stop(&mut self.daemon);
        let _ = std::fs::remove_dir_all(&self.root);
        // The execution root holds the daemon's mounts until it is gone.
        let _ = Command::new("umount").arg("-R").arg(self.run.path().join("exec")).output();
    }
}

/// A containerd daemon of the test's own under `dir` (the CRI plugin off), stopped and removed
/// when dropped.
pub struct Containerd {
    root: PathBuf,
    daemon: Child,
    socket: PathBuf,
    /// State and the socket.
    _run: tempfile::TempDir,
}

impl Containerd {
    /// Starts `containerd` with its root under `dir` (removed first), its state and socket in
    /// a short temporary directory.
    pub fn start(dir: &Path) -> Containerd {
        let root = dir.to_path_buf();
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("containerd dir");
        let run = short_dir("containerd-");
        let socket = run.path().join("containerd.sock");
        let config = root.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = \
                    [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{}\"\n",
                root.join("root").display(),
                run.path().join("state").display(),
                socket.display()
            ),
        )
        .expect("config");
        let log = root.join("containerd.log");
        let daemon = spawn_daemon(Command::new("containerd").arg("--config").arg(&config), &log);
        let containerd = Containerd { root, daemon, socket, _run: run };
        wait_for("containerd", &log, || {
            containerd.ctr().arg("version").output().is_ok_and(|o| o.status.success())
        });
        containerd
    }

    /// A `ctr` command talking to this daemon, in the `squash` namespace.
    pub fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(&self.socket).args(["--namespace", "squash"]);
        c
    }

    /// The daemon's version.
    pub fn version(&self) -> String {
        String::from_utf8_lossy(&output(self.ctr().arg("version")))
            .lines()
            .rfind(|l| l.trim_start().starts_with("Version:"))
            .map(|l| l.trim().trim_start_matches("Version:").trim().to_string())
            .unwrap_or_default()
    }

    /// `ctr images import archive` (unpacked into the overlayfs snapshotter).
    ///
    /// An import refused part way leaves the snapshots it committed to containerd's garbage
    /// collector, which runs later on its own schedule: an import of an image that shares those
    /// layers would find them, then lose them before it builds on them ("parent snapshot does
    /// not exist"). A refused import therefore collects at once (`ctr leases rm --sync` runs
    /// the collector before it returns), so what follows starts from a settled store.
    pub fn import(&self, archive: &Path) -> Result<(), String> {
        let result = try_output(self.ctr().args(["images", "import"]).arg(archive)).map(drop);
        if result.is_err() {
            // A lease left by an earlier collection only makes `create` fail; `rm --sync`
            // collects either way.
            let _ = try_output(self.ctr().args(["leases", "create", "--id", "squash-collect"]));
            output(self.ctr().args(["leases", "rm", "--sync", "squash-collect"]));
        }
        result
    }

    /// The root filesystem containerd's snapshotter made of `image` (`ctr images mount`),
    /// as a tar.
    pub fn rootfs(&self, image: &str) -> Result<Unpacked, String> {
        let target = self.root.join("mnt");
        std::fs::create_dir_all(&target).expect("mount point");
        try_output(self.ctr().args(["images", "mount", image]).arg(&target))?;
        let tar = tar_of(&target);
        output(self.ctr().args(["images", "unmount", "--rm"]).arg(&target));
        tar
    }

    /// `ctr images rm image`.
    pub fn remove(&self, image: &str) {
        output(self.ctr().args(["images", "rm", "--sync", image]));
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let target = self.root.join("mnt");
        let _ = Command::new("umount").arg(&target).output();
        stop(&mut self.daemon);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// podman with a store of the test's own under `dir` (vfs, no systemd), removed when dropped.
pub struct Podman {
    store: PathBuf,
    /// The run root, which podman wants at most 50 characters long.
    run: tempfile::TempDir,
}

impl Podman {
    /// A fresh store under `dir` (removed first), its run root in a short temporary directory.
    pub fn new(dir: &Path) -> Podman {
        let _ = std::fs::remove_dir_all(dir);
        Podman { store: dir.to_path_buf(), run: short_dir("podman-") }
    }

    /// A `podman` command using this store.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg(format!("--root={}", self.store.join("root").display()))
            .arg(format!("--runroot={}", self.run.path().display()))
            .args(["--storage-driver=vfs", "--cgroup-manager=cgroupfs", "--events-backend=file"]);
        c
    }

    /// `podman load -i archive`.
    pub fn load(&self, archive: &Path) -> Result<(), String> {
        try_output(self.cmd().args(["load", "-q", "-i"]).arg(archive)).map(drop)
    }

    /// The filesystem of a container created from `image`, as `podman export` writes it.
    pub fn export(&self, image: &str) -> Result<Vec<u8>, String> {
        let id = String::from_utf8_lossy(&try_output(self.cmd().args(["create", image, "true"]))?)
            .trim()
            .to_string();
        let tar = try_output(self.cmd().args(["export", &id]));
        output(self.cmd().args(["rm", &id]));
        tar
    }

    /// `podman rmi image`.
    pub fn remove(&self, image: &str) {
        output(self.cmd().args(["rmi", "-f", image]));
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// What `umoci unpack` makes of `layout:tag`, as a tar (the bundle is made in `scratch` and
/// removed).
pub fn umoci_rootfs(layout: &Path, tag: &str, scratch: &Path) -> Result<Unpacked, String> {
    let bundle = scratch.join("umoci-bundle");
    let _ = std::fs::remove_dir_all(&bundle);
    let unpacked = try_output(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&bundle),
    );
    let tar = unpacked.and_then(|_| tar_of(&bundle.join("rootfs")));
    let _ = std::fs::remove_dir_all(&bundle);
    tar
}
