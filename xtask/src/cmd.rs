//! Run a command: echo it, run it, and fail with a message that names it.
//!
//! [`Cmd`] is a thin builder over [`std::process::Command`] that remembers what it
//! will run, so it can print `$ cargo clippy --workspace ...` before running and
//! name the command in the error when it fails. Probes ([`Cmd::probe`]) run
//! silently and only report whether the command worked and what it printed.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::error::{Error, Result};

/// A command to run, with its arguments, extra environment and directory.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    shown_as: Option<String>,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    env_removes: Vec<OsString>,
    dir: Option<PathBuf>,
}

impl Cmd {
    /// A command running `program` (a name looked up on `PATH`, or a path).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            shown_as: None,
            args: Vec::new(),
            envs: Vec::new(),
            env_removes: Vec::new(),
            dir: None,
        }
    }

    /// Shows the program as `name` when the command is echoed (e.g. `cargo`
    /// for the full path in `$CARGO`).
    pub fn shown_as(mut self, name: impl Into<String>) -> Self {
        self.shown_as = Some(name.into());
        self
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the command (shown when it is echoed).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Removes an environment variable for the command.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env_removes.push(key.as_ref().to_owned());
        self
    }

    /// Runs the command in `dir`.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for key in &self.env_removes {
            command.env_remove(key);
        }
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }

    fn spawn_error(&self, err: &std::io::Error) -> Error {
        let hint = if err.kind() == std::io::ErrorKind::NotFound {
            " (is it installed and on PATH?)"
        } else {
            ""
        };
        Error::new(format!("could not start `{self}`: {err}{hint}"))
    }

    fn check(&self, status: ExitStatus) -> Result<()> {
        if status.success() {
            Ok(())
        } else {
            Err(Error::new(format!("`{self}` failed ({status})")))
        }
    }

    /// Echoes the command as `$ ...`, runs it with inherited stdio and waits.
    /// A non-zero exit is an error that names the command.
    pub fn run(&self) -> Result<()> {
        println!("$ {self}");
        let status = self.command().status().map_err(|e| self.spawn_error(&e))?;
        self.check(status)
    }

    /// Echoes the command, runs it with stdout inherited and stderr read line by line:
    /// each line is echoed to our stderr and handed to `on_line` (e.g. to collect
    /// figures a test prints). A non-zero exit is an error that names the command.
    pub fn run_reading_stderr(&self, mut on_line: impl FnMut(&str)) -> Result<()> {
        use std::io::BufRead;
        println!("$ {self}");
        let mut child = self
            .command()
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(&e))?;
        if let Some(stderr) = child.stderr.take() {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                on_line(&line);
            }
        }
        let status = child.wait().map_err(|e| self.spawn_error(&e))?;
        self.check(status)
    }

    /// Runs the command silently (stdin closed, output captured) and returns its
    /// stdout if it exited 0, `None` if it could not start or failed.
    pub fn probe(&self) -> Option<String> {
        let output = self
            .command()
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Echoes the command and replaces this process with it (Unix), so signals
    /// from the terminal (Ctrl-C) reach it directly and its exit code becomes
    /// ours. Elsewhere it runs the command, waits, and exits with its code.
    /// Returns only if the command could not be started.
    pub fn exec(&self) -> Error {
        println!("$ {self}");
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            let err = self.command().exec();
            self.spawn_error(&err)
        }
        #[cfg(not(unix))]
        {
            match self.command().status() {
                Ok(status) => std::process::exit(status.code().unwrap_or(1)),
                Err(err) => self.spawn_error(&err),
            }
        }
    }
}

/// Quotes a word for display if a shell would split or expand it.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

impl fmt::Display for Cmd {
    /// Shows the command as a person would type it: extra environment first,
    /// then the program (or its [`Cmd::shown_as`] name), then the arguments,
    /// quoted where needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in &self.envs {
            write!(
                f,
                "{}={} ",
                key.to_string_lossy(),
                shell_word(&value.to_string_lossy())
            )?;
        }
        let program = match &self.shown_as {
            Some(name) => name.clone(),
            None => self.program.to_string_lossy().into_owned(),
        };
        f.write_str(&shell_word(&program))?;
        for arg in &self.args {
            write!(f, " {}", shell_word(&arg.to_string_lossy()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_env_name_and_quotes() {
        let cmd = Cmd::new("/x/toolchains/bin/cargo")
            .shown_as("cargo")
            .args(["test", "--workspace", "a b"])
            .env("K", "/p/python");
        assert_eq!(cmd.to_string(), "K=/p/python cargo test --workspace 'a b'");
        let cmd = Cmd::new("/v/bin/python").args(["-c", "it's"]);
        assert_eq!(cmd.to_string(), r"/v/bin/python -c 'it'\''s'");
    }

    #[cfg(unix)]
    #[test]
    fn probe_and_run() {
        assert_eq!(Cmd::new("echo").arg("hi").probe().as_deref(), Some("hi\n"));
        assert!(Cmd::new("false").probe().is_none());
        assert!(Cmd::new("no-such-program-xtask").probe().is_none());
        let err = Cmd::new("no-such-program-xtask")
            .run()
            .expect_err("must fail");
        assert!(err.to_string().contains("is it installed"), "{err}");
    }
}
