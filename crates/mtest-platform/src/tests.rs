//! The interface on the system it runs on (Linux here; Windows under Wine by `./dev
//! cross`): a group started by `spawn_owned` is killed with what it started, and what a
//! dead leader left behind is found and killed as a stray. The processes are this test
//! binary itself, run as a helper (`helper`, ignored unless asked for by name).

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::*;

const ROLE: &str = "MTEST_PLATFORM_TEST_ROLE";

/// Run by the tests below, in a child: `leader` starts a `sleeper` and prints its pid.
#[test]
#[ignore = "a helper process of the tests below"]
fn helper() {
    match std::env::var(ROLE).as_deref() {
        Ok("leader") => {
            let mut sleeper = helper_command("sleeper")
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            println!("{}", sleeper.id());
            let _ = sleeper.wait(); // killed with this leader, or left behind by it
        }
        Ok("sleeper") => std::thread::sleep(Duration::from_secs(60)),
        _ => {}
    }
}

fn helper_command(role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "tests::helper",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE, role);
    cmd
}

/// A leader in a group of its own, and the pid of the sleeper it started.
fn leader() -> (std::process::Child, i32) {
    let mut cmd = helper_command("leader");
    cmd.stdout(Stdio::piped());
    let mut child = spawn_owned(&mut cmd).unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // The test harness prints too: the pid ends the line `test tests::helper ... 1234`.
    let pid = loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the leader said nothing"
        );
        if let Some(Ok(pid)) = line.split_whitespace().last().map(str::parse::<i32>) {
            break pid;
        }
    };
    (child, pid)
}

#[cfg(unix)]
fn gone(pid: i32) -> bool {
    is_stopped(pid) // gone, a zombie, or stopped: none of them runs
        && !table::info(pid).is_some_and(|i| i.stopped)
}

#[cfg(windows)]
fn gone(pid: i32) -> bool {
    use windows_sys::Win32::Foundation::{CloseHandle, WAIT_OBJECT_0};
    use windows_sys::Win32::System::Threading::{OpenProcess, WaitForSingleObject};
    const SYNCHRONIZE: u32 = 0x0010_0000;
    // SAFETY: a pid that is gone yields a null handle, checked; ours is closed once.
    unsafe {
        let process = OpenProcess(SYNCHRONIZE, 0, pid as u32);
        if process.is_null() {
            return true;
        }
        let ended = WaitForSingleObject(process, 0) == WAIT_OBJECT_0;
        CloseHandle(process);
        ended
    }
}

fn eventually_gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_group_is_killed_with_everything_it_started() {
    let (mut child, sleeper) = leader();
    assert!(!gone(sleeper), "the sleeper ended by itself");
    signal_group(child.id() as i32, Sig::SIGKILL);
    let status = child.wait().unwrap();
    assert!(!status.success(), "{}", describe_exit(status));
    assert!(
        eventually_gone(sleeper),
        "the leader's child outlived its group"
    );
    kill_strays(Some(child.id() as i32), None, &[]);
}

#[test]
fn what_a_dead_leader_left_running_is_a_stray_and_is_killed() {
    let (mut child, sleeper) = leader();
    let _ = child.kill(); // the leader alone
    let _ = child.wait();
    assert!(!gone(sleeper), "killing the leader alone killed its child");
    let strays = kill_strays(Some(child.id() as i32), None, &[]);
    assert_eq!(strays.len(), 1, "{strays:?}");
    assert!(
        strays[0].starts_with(&format!("{sleeper} ")),
        "{strays:?} names {sleeper}"
    );
    assert!(eventually_gone(sleeper), "the stray still runs");
}

#[test]
fn a_killed_process_is_described_as_killed() {
    let text = describe_exit(killed_status());
    if cfg!(unix) {
        assert_eq!(text, "SIGKILL");
    } else {
        assert_eq!(text, "exit status 1");
    }
}

/// The supervision loop's waker ends its wait at a write to the watched file, not at the
/// end of its pause: inotify on Linux, kqueue on macOS (Windows sleeps the pause out).
#[cfg(unix)]
#[test]
fn a_write_to_the_watched_file_ends_the_wait() {
    use std::io::Write;
    let path = std::env::temp_dir().join(format!("mtest-waker-{}", std::process::id()));
    std::fs::write(&path, b"").expect("a temp file");
    let waker = FileWaker::watch(&path);
    let written = path.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&written)
            .expect("the temp file");
        f.write_all(b"{}\n").expect("a write");
    });
    let started = Instant::now();
    waker.wait(Duration::from_secs(300));
    let waited = started.elapsed();
    writer.join().expect("the writer");
    let _ = std::fs::remove_file(&path);
    assert!(
        waited < Duration::from_secs(150),
        "the wait ran to its pause ({waited:?}): the write did not wake it"
    );
}
