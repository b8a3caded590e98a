//! Timing commands: wall and CPU seconds and peak memory under GNU time, medians of several
//! runs, and a case's row printed against its limit.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Result};

/// Runs a command under GNU time: (seconds, peak RSS in MB).
pub(crate) fn timed(cmd: &mut Command) -> Result<(f64, f64)> {
    timed_cpu(cmd).map(|(wall, rss, _)| (wall, rss))
}

/// Runs a command under GNU time: (seconds, peak RSS in MB, CPU seconds: user and system, its
/// children included).
pub(crate) fn timed_cpu(cmd: &mut Command) -> Result<(f64, f64, f64)> {
    timed_stderr(cmd).map(|(timed, _)| timed)
}

/// [`timed_cpu`], with what the command wrote on stderr.
pub(crate) fn timed_stderr(cmd: &mut Command) -> Result<((f64, f64, f64), String)> {
    let report = std::env::temp_dir().join("squash-bench-time.txt");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%U %S %M").arg("-o").arg(&report).arg(program).args(args);
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    settle();
    let start = Instant::now();
    let status = timed.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    let wall = start.elapsed().as_secs_f64();
    if !status.status.success() {
        bail!("{cmd:?} failed:\n{}", String::from_utf8_lossy(&status.stderr));
    }
    let text = fs::read_to_string(&report)?;
    // The last line: what GNU time printed after anything the command's own failure added.
    let fields: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let &[user, system, rss_kb] = fields.as_slice() else {
        bail!("unexpected output of GNU time: {text}")
    };
    Ok(((wall, rss_kb / 1024.0, user + system), String::from_utf8_lossy(&status.stderr).into()))
}

/// The phases of a squash run with `--verbose`, from its step lines, such as
/// `squash: [  0.98 s,   1.38 s CPU] indexing 1 layer (8.1 MB)`: each phase's name, seconds
/// and CPU seconds, up to the next phase. A step's figures (after a colon or in parentheses)
/// are left out of its name; steps that begin together (a merge and the copies beside it) make
/// one phase, named by them all in a fixed order, without the announcement of the writing that
/// starts with them (or of an opening too short to be a phase of its own).
pub(crate) fn phases(stderr: &str) -> Vec<(String, f64, f64)> {
    let steps: Vec<(String, f64, f64)> = stderr
        .lines()
        .filter_map(|line| {
            let (clocks, name) = line.strip_prefix("squash: [")?.split_once(" s CPU] ")?;
            let (wall, cpu) = clocks.split_once(" s, ")?;
            let name = name.split([':', '(']).next().unwrap_or(name).trim();
            Some((name.to_string(), wall.trim().parse().ok()?, cpu.trim().parse().ok()?))
        })
        .collect();
    let mut groups: Vec<(Vec<String>, f64, f64)> = Vec::new();
    for (name, wall, cpu) in steps {
        match groups.last_mut() {
            // Printed to a hundredth of a second: a thread's step a little later is the same.
            Some(last) if wall - last.1 < 0.015 => last.0.push(name),
            _ => groups.push((vec![name], wall, cpu)),
        }
    }
    groups
        .windows(2)
        .map(|w| {
            let mut names = w[0].0.clone();
            if names.len() > 1 {
                names.retain(|n| {
                    !matches!(n.as_str(), "writing" | "measuring" | "opening the input")
                });
            }
            names.sort();
            (names.join(" + "), w[1].1 - w[0].1, w[1].2 - w[0].2)
        })
        .collect()
}

/// Prints the median seconds, CPU seconds and busy cores of each phase over `runs` (each a run's
/// [`phases`]; runs whose phases differ from the first's are left out).
pub(crate) fn phase_rows(label: &str, runs: &[Vec<(String, f64, f64)>]) {
    let Some(first) = runs.first() else { return };
    let same: Vec<_> = runs
        .iter()
        .filter(|r| r.len() == first.len() && r.iter().zip(first).all(|(a, b)| a.0 == b.0))
        .collect();
    for (i, (name, _, _)) in first.iter().enumerate() {
        let wall = median(same.iter().map(|r| r[i].1).collect());
        let cpu = median(same.iter().map(|r| r[i].2).collect());
        println!(
            "    {:<8}{name:<38} {wall:>6.2} s {cpu:>6.2} CPU s {:>5.2} cores",
            format!("{label}:"),
            cpu / wall.max(1e-9)
        );
    }
}

/// Writes dirty pages back before a measurement, so that no run pays for the writes of the
/// one before it (generating the images writes gigabytes).
pub(crate) fn settle() {
    let _ = Command::new("sync").status();
}

/// Reads `paths` (files, or every file under a directory) into the page cache before a
/// measurement, so that every timed command starts with its inputs in memory: this machine's
/// kernel reclaims cached pages within seconds of their last use, and without this a command
/// reads from memory or from the disk depending on what ran before it.
pub(crate) fn warm<P: AsRef<Path>>(paths: &[P]) {
    fn read(path: &Path, buf: &mut [u8]) {
        if path.is_dir() {
            for entry in fs::read_dir(path).into_iter().flatten().flatten() {
                read(&entry.path(), buf);
            }
        } else if let Ok(mut file) = fs::File::open(path) {
            while matches!(file.read(buf), Ok(n) if n > 0) {}
        }
    }
    let mut buf = vec![0u8; 1 << 20];
    for path in paths {
        read(path.as_ref(), &mut buf);
    }
}

/// The median of some timings.
pub(crate) fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(0.0)
}

/// Runs `measure` `runs` times: the median time and the largest peak RSS.
pub(crate) fn timed_median(
    runs: usize,
    mut measure: impl FnMut() -> Result<(f64, f64)>,
) -> Result<(f64, f64)> {
    let mut times = Vec::new();
    let mut rss = 0f64;
    for _ in 0..runs {
        let (t, r) = measure()?;
        times.push(t);
        rss = rss.max(r);
    }
    Ok((median(times), rss))
}

/// Time of a shell pipeline (for the limits): (seconds, CPU seconds of the whole pipeline).
pub(crate) fn timed_sh(script: &str) -> Result<(f64, f64)> {
    timed_cpu(Command::new("sh").arg("-c").arg(script)).map(|(wall, _, cpu)| (wall, cpu))
}

pub(crate) fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Prints a case's row against its physical limit: `ours` is squash's (median seconds, median
/// CPU seconds, peak RSS), `read` and `write` the limit's two commands' (seconds, CPU seconds)
/// per round, `hash` the sha256 of every byte squash must hash beyond them. The limit is the
/// two commands' sum, the overlap their larger one, the floor their CPU spread over `cores`; the
/// verified limit is the CPU of all three spread over `cores`.
pub(crate) fn limit_row(
    case: &str,
    ours: (f64, f64, f64),
    read: &[(f64, f64)],
    write: &[(f64, f64)],
    hash: &[(f64, f64)],
    cores: usize,
) {
    let (time, cpu, rss) = ours;
    let wall = |runs: &[(f64, f64)]| median(runs.iter().map(|r| r.0).collect());
    let busy = |runs: &[(f64, f64)]| median(runs.iter().map(|r| r.1).collect());
    let (limit, limit_cpu) = (wall(read) + wall(write), busy(read) + busy(write));
    let overlap = wall(read).max(wall(write));
    let verified = (limit_cpu + busy(hash)) / cores as f64;
    println!(
        "{:<28} {:>9.2} {:>7.2} {:>9.2} {:>7.2} {:>6.2}x {:>9.2} {:>6.2}x {:>6.2}x {:>7.1} {:>10.2} \
         {:>6.2}x",
        case,
        time,
        cpu,
        limit,
        limit_cpu,
        time / limit,
        overlap,
        time / overlap,
        limit_cpu / cores as f64 / limit,
        rss,
        verified,
        time / verified
    );
}

/// The tool that hashes for the verified limit: `openssl dgst -sha256` (which uses the CPU's
/// SHA instructions, as squash's sha256 does), else `sha256sum`.
pub(crate) fn sha256_tool() -> &'static str {
    if have("openssl") {
        "openssl dgst -sha256"
    } else {
        "sha256sum"
    }
}

#[cfg(test)]
mod tests {
    use super::phases;

    #[test]
    fn an_opening_is_a_phase_only_when_it_lasts() {
        let line = |at: f64, cpu: f64, name: &str| {
            format!("squash: [{at:6.2} s, {cpu:6.2} s CPU] {name}\n")
        };
        let layout = [
            line(0.0, 0.0, "opening the input"),
            line(0.0, 0.0, "indexing 4 layers (1 GB)"),
            line(0.5, 0.9, "writing: 1 GB of work"),
            line(0.5, 0.9, "merging layers 1..4"),
            line(1.1, 2.0, "done"),
        ]
        .concat();
        let names: Vec<String> = phases(&layout).into_iter().map(|p| p.0).collect();
        assert_eq!(names, ["indexing 4 layers", "merging layers 1..4"]);
        let pipe = [
            line(0.0, 0.0, "reading the input into a spool (each member hashed as it arrives)"),
            line(0.6, 0.7, "indexing 3 layers (388 MB)"),
            line(0.9, 1.2, "done"),
        ]
        .concat();
        let phases = phases(&pipe);
        assert_eq!(phases[0].0, "reading the input into a spool");
        assert!((phases[0].1 - 0.6).abs() < 1e-9 && (phases[1].1 - 0.3).abs() < 1e-9);
    }
}
