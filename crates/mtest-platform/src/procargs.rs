//! macOS's `KERN_PROCARGS2` block, parsed: a native-endian `int` argument count, the
//! executable's path, NUL padding, the arguments, then the environment, each string ending
//! in a NUL. Plain bytes in, so it is tested on every system.

pub(crate) struct ProcArgs {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<String>,
}

impl ProcArgs {
    /// The value of `name` in the environment.
    pub(crate) fn var(&self, name: &str) -> Option<String> {
        self.env.iter().find_map(|kv| {
            kv.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_string)
        })
    }
}

pub(crate) fn parse(block: &[u8]) -> Option<ProcArgs> {
    let argc = i32::from_ne_bytes(block.get(..4)?.try_into().ok()?);
    let argc = usize::try_from(argc).ok()?;
    let rest = &block[4..];
    // The executable's path, then padding NULs up to the first argument.
    let exec_end = rest.iter().position(|b| *b == 0)?;
    let start = exec_end + rest[exec_end..].iter().position(|b| *b != 0)?;
    // Only strings with their NUL: a block cut short ends in half a string.
    let mut strings = rest[start..]
        .split_inclusive(|b| *b == 0)
        .filter_map(|s| s.strip_suffix(&[0]))
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let args: Vec<String> = strings.by_ref().take(argc).collect();
    if args.len() < argc {
        return None;
    }
    let env = strings.take_while(|s| !s.is_empty()).collect();
    Some(ProcArgs { args, env })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(argc: i32, parts: &[&str]) -> Vec<u8> {
        let mut b = argc.to_ne_bytes().to_vec();
        b.extend_from_slice(b"/usr/bin/python3\0\0\0\0");
        for p in parts {
            b.extend_from_slice(p.as_bytes());
            b.push(0);
        }
        b.extend_from_slice(b"\0\0");
        b
    }

    #[test]
    fn arguments_and_environment_are_told_apart() {
        let b = block(
            3,
            &[
                "python3",
                "-c",
                "pass",
                "PATH=/bin",
                "PYTEST_XDIST_WORKER=gw1",
            ],
        );
        let p = parse(&b).unwrap();
        assert_eq!(p.args, ["python3", "-c", "pass"]);
        assert_eq!(p.var("PYTEST_XDIST_WORKER").as_deref(), Some("gw1"));
        assert_eq!(p.var("PYTEST_XDIST"), None);
        assert_eq!(p.var("PATH").as_deref(), Some("/bin"));
    }

    #[test]
    fn a_truncated_block_is_no_answer() {
        assert!(parse(&block(5, &["python3", "-c"])).is_none());
        assert!(parse(&[1, 0]).is_none());
        assert!(parse(&1i32.to_ne_bytes()).is_none());
    }
}
