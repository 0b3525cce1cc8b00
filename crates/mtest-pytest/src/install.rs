//! The command that installs what mtest needs, said in the project's own tool: uv, Poetry,
//! PDM or Pipenv when its lock file or its `pyproject.toml` table says the project uses
//! it; else pip, or `uv pip` for a virtual environment uv made (it has no pip).

use std::path::Path;

/// The project's own tool, found in `root`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tool {
    Uv,
    Poetry,
    Pdm,
    Pipenv,
}

fn tool_of(root: &Path) -> Option<Tool> {
    let pyproject = std::fs::read_to_string(root.join("pyproject.toml")).unwrap_or_default();
    let table = |name: &str| {
        pyproject
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("[tool.{name}")))
    };
    let known = [
        (Tool::Uv, "uv.lock", "uv"),
        (Tool::Poetry, "poetry.lock", "poetry"),
        (Tool::Pdm, "pdm.lock", "pdm"),
    ];
    known
        .into_iter()
        .find(|(_, lock, _)| root.join(lock).is_file())
        .or_else(|| known.into_iter().find(|(_, _, name)| table(name)))
        .map(|(tool, _, _)| tool)
        .or_else(|| root.join("Pipfile").is_file().then_some(Tool::Pipenv))
}

/// Whether `python` belongs to a virtual environment uv made (`uv = …` in its
/// `pyvenv.cfg`).
fn made_by_uv(python: &Path) -> bool {
    let Some(venv) = python.parent().and_then(Path::parent) else {
        return false;
    };
    std::fs::read_to_string(venv.join("pyvenv.cfg")).is_ok_and(|cfg| {
        cfg.lines()
            .any(|l| l.split('=').next().is_some_and(|k| k.trim() == "uv"))
    })
}

/// The command that installs `packages` for the project in `root` run with `python`.
pub(crate) fn command(root: &Path, python: &Path, packages: &str) -> String {
    match tool_of(root) {
        Some(Tool::Uv) => format!("uv add --dev {packages}"),
        Some(Tool::Poetry) => format!("poetry add --group dev {packages}"),
        Some(Tool::Pdm) => format!("pdm add --dev {packages}"),
        Some(Tool::Pipenv) => format!("pipenv install --dev {packages}"),
        None if made_by_uv(python) => {
            format!("uv pip install --python {} {packages}", python.display())
        }
        None => format!("{} -m pip install {packages}", python.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    const PYTHON: &str = "/nowhere/venv/bin/python";

    #[test]
    fn a_lock_file_names_the_projects_tool() {
        for (lock, said) in [
            ("uv.lock", "uv add --dev pytest"),
            ("poetry.lock", "poetry add --group dev pytest"),
            ("pdm.lock", "pdm add --dev pytest"),
            ("Pipfile", "pipenv install --dev pytest"),
        ] {
            let dir = project(&[(lock, "")]);
            assert_eq!(
                command(dir.path(), Path::new(PYTHON), "pytest"),
                said,
                "{lock}"
            );
        }
    }

    #[test]
    fn without_a_lock_file_the_pyproject_table_names_it() {
        let dir = project(&[(
            "pyproject.toml",
            "[project]\nname = 'p'\n\n[tool.poetry.group.dev]\n",
        )]);
        assert_eq!(
            command(dir.path(), Path::new(PYTHON), "pytest-timeout"),
            "poetry add --group dev pytest-timeout"
        );
    }

    #[test]
    fn a_lock_file_wins_over_another_tools_table() {
        let dir = project(&[("uv.lock", ""), ("pyproject.toml", "[tool.pdm]\n")]);
        assert_eq!(
            command(dir.path(), Path::new(PYTHON), "pytest"),
            "uv add --dev pytest"
        );
    }

    #[test]
    fn otherwise_pip_or_uv_pip_for_a_venv_uv_made() {
        let dir = project(&[("pyproject.toml", "[tool.mtest]\n")]);
        let venv = dir.path().join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        let python = venv.join("bin/python");
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        assert_eq!(
            command(dir.path(), &python, "pytest"),
            format!("{} -m pip install pytest", python.display())
        );
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\nuv = 0.9.2\n").unwrap();
        assert_eq!(
            command(dir.path(), &python, "pytest"),
            format!("uv pip install --python {} pytest", python.display())
        );
    }
}
