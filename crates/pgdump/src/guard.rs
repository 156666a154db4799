//! The dump guard: a dump read back from a target is untrusted text that is about
//! to be fed to psql, so it is checked line by line before psql sees it.
//!
//! psql runs its backslash meta-commands (`\!` runs a shell command, `\o |cmd`
//! pipes output into one) wherever its lexer is outside a literal, also mid-line.
//! [`DumpGuard`] lexes the dump as psql does (string and `E''` literals, quoted
//! identifiers, nested comments, dollar-quoted bodies, parentheses and
//! `CREATE FUNCTION … BEGIN ATOMIC` depth, `COPY … FROM stdin` data up to `\.`),
//! refuses a backslash anywhere else, and judges every statement: anything that
//! reaches outside the database (other extensions, `LOAD`, tablespaces, foreign
//! servers, languages, roles, `COPY` to or from a program or file, large-object
//! file access, preload libraries, …) is refused, naming the line. pg_dump's own
//! `\restrict KEY` / `\unrestrict KEY` lines are dropped: the caller runs psql
//! restricted with a key of its own ([`restrict_key`]), which is the first layer
//! for meta-commands; this text filter is the second.
//!
//! The lexer assumes `standard_conforming_strings = on` and UTF-8, which is what
//! pg_dump writes; a dump that sets either otherwise is refused, since psql's
//! lexer would then read the same bytes differently.

use std::fmt;

/// The extensions a real Immich database uses. Before loading, the caller creates
/// those available; the dump's statements about them are [`Verdict::PreCreated`].
pub const IMMICH_EXTENSIONS: &[&str] = &[
    "cube",
    "earthdistance",
    "pg_trgm",
    "unaccent",
    "uuid-ossp",
    "vector",
    "vchord",
    "vectors",
];

/// Why a dump was refused: the line and the form found there (never the line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 1-based line number in the decompressed dump.
    pub line: u64,
    /// What was found.
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for Refusal {}

/// What a statement that passed is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An ordinary statement.
    Load,
    /// About one of [`IMMICH_EXTENSIONS`] (create, drop, comment, alter): a scratch
    /// load skips it, having created the extension itself.
    PreCreated,
    /// `ALTER … OWNER TO`: a scratch load, as one unprivileged role, skips it.
    Ownership,
}

/// A complete statement.
#[derive(Debug, Clone)]
pub struct Statement {
    /// Its text as in the dump, from the end of the previous statement (comments
    /// and blank lines before it included) to its `;`, with newlines.
    pub text: String,
    /// The line it ends on.
    pub line: u64,
    /// What it is.
    pub verdict: Verdict,
    /// A `COPY … FROM stdin`: data lines follow, up to `\.`.
    pub copy: bool,
}

/// What to do with one line.
#[derive(Debug)]
pub enum Step {
    /// A data line of a `COPY` (the terminating `\.` included): pass it on.
    Copy,
    /// pg_dump's own `\restrict` / `\unrestrict` line: leave it out.
    Drop,
    /// The line is held: a statement is still open.
    Held,
    /// The line completed these statements (it may hold more than one).
    Statements(Vec<Statement>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lex {
    Normal,
    Quote { extended: bool },
    Ident,
    Block(u32),
    Dollar(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A bare word, upper-cased.
    Word(String),
    /// A quoted identifier's name.
    Ident(String),
    /// A string literal's content (the first [`KEPT`] characters).
    Str(String),
    /// A dollar-quoted body.
    Body,
    Punct(char),
}

/// Characters of a literal kept for judging (language names, settings).
const KEPT: usize = 64;

/// Settings a dump must never touch: they load code or run programs.
const FORBIDDEN_SETTINGS: &[&str] = &[
    "preload_libraries",
    "archive_command",
    "ssl_passphrase_command",
    "restore_command",
    "archive_library",
];

/// Functions that reach files or programs on the server (the unprivileged role is
/// the real barrier; these are refused by name as well).
const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "LO_IMPORT",
    "LO_EXPORT",
    "PG_READ_FILE",
    "PG_READ_BINARY_FILE",
    "PG_LS_DIR",
    "PG_STAT_FILE",
];

/// Checks a dump line by line. See the module docs.
#[derive(Debug)]
pub struct DumpGuard {
    lex: Lex,
    line: u64,
    text: String,
    toks: Vec<Tok>,
    word: String,
    lit: String,
    paren: u32,
    begin: u32,
    /// psql's "CREATE [OR REPLACE] FUNCTION|PROCEDURE" detector: the first letters of
    /// the statement's first four words where they are one of those.
    first: [u8; 4],
    words: usize,
    copy: bool,
}

impl Default for DumpGuard {
    fn default() -> Self {
        DumpGuard {
            lex: Lex::Normal,
            line: 0,
            text: String::new(),
            toks: Vec::new(),
            word: String::new(),
            lit: String::new(),
            paren: 0,
            begin: 0,
            first: [0; 4],
            words: 0,
            copy: false,
        }
    }
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii()
}

impl DumpGuard {
    /// A guard at the start of a dump.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of the last line seen.
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// Judges the next line (without its newline).
    ///
    /// # Errors
    /// A [`Refusal`] naming this line when it must not reach psql.
    pub fn line(&mut self, line: &str) -> Result<Step, Refusal> {
        self.line += 1;
        if self.copy {
            if line == "\\." {
                self.copy = false;
            } else if line.starts_with('\\')
                && !matches!(
                    line.as_bytes().get(1),
                    Some(b'\\' | b'N' | b'b' | b'f' | b'n' | b'r' | b't' | b'v')
                )
            {
                // pg_dump escapes a leading backslash; anything else is not its output.
                return Err(self.refuse("a COPY data line starting with an unknown escape"));
            }
            return Ok(Step::Copy);
        }
        if self.lex == Lex::Normal && self.toks.is_empty() && self.word.is_empty() {
            let t = line.trim();
            if let Some(key) = t
                .strip_prefix("\\restrict ")
                .or_else(|| t.strip_prefix("\\unrestrict "))
                && !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Ok(Step::Drop);
            }
        }
        let mut done = Vec::new();
        let mut start = 0;
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            let (at, c) = chars[i];
            let next = chars.get(i + 1).map(|&(_, c)| c);
            match self.lex.clone() {
                Lex::Normal => {
                    // `$` continues a word (psql's ident_cont, and its "junk" after a
                    // number), except after a bare number, where `$$` opens a body.
                    let number = self.word.bytes().all(|b| b.is_ascii_digit() || b == b'_');
                    if ident_char(c) || (c == '$' && !number) {
                        self.word.push(c);
                        i += 1;
                        continue;
                    }
                    let word = std::mem::take(&mut self.word);
                    let prefix = word.len() == 1
                        && matches!(
                            word.as_bytes()[0],
                            b'e' | b'E' | b'n' | b'N' | b'b' | b'B' | b'x' | b'X'
                        );
                    if c == '\'' && prefix {
                        self.lex = Lex::Quote {
                            extended: word.eq_ignore_ascii_case("e"),
                        };
                        i += 1;
                        continue;
                    }
                    self.end_word(word);
                    match c {
                        '-' if next == Some('-') => break,
                        '/' if next == Some('*') => {
                            self.lex = Lex::Block(1);
                            i += 2;
                            continue;
                        }
                        '\'' => self.lex = Lex::Quote { extended: false },
                        '"' => self.lex = Lex::Ident,
                        '\\' => {
                            return Err(self
                                .refuse("a psql meta-command (a backslash outside any literal)"));
                        }
                        '$' => {
                            let rest: String = chars[i + 1..].iter().map(|&(_, c)| c).collect();
                            let tag_len = rest
                                .char_indices()
                                .take_while(|&(n, c)| {
                                    ident_char(c) && !(n == 0 && c.is_ascii_digit())
                                })
                                .count();
                            let tag: String = rest.chars().take(tag_len).collect();
                            if rest.chars().nth(tag_len) == Some('$') {
                                self.toks.push(Tok::Body);
                                self.lex = Lex::Dollar(format!("${tag}$"));
                                i += tag_len + 2;
                                continue;
                            }
                            self.toks.push(Tok::Punct('$'));
                        }
                        '(' => {
                            self.paren += 1;
                            self.toks.push(Tok::Punct('('));
                        }
                        ')' => {
                            self.paren = self.paren.saturating_sub(1);
                            self.toks.push(Tok::Punct(')'));
                        }
                        ';' if self.paren == 0 && self.begin == 0 => {
                            let end = at + 1;
                            self.text.push_str(&line[start..end]);
                            start = end;
                            let s = self.finish_statement()?;
                            let copy = s.copy;
                            done.push(s);
                            if copy {
                                let rest = &line[end..];
                                let rest = rest.trim_start();
                                if !(rest.is_empty() || rest.starts_with("--")) {
                                    return Err(
                                        self.refuse("text after a COPY … FROM stdin on its line")
                                    );
                                }
                                self.copy = true;
                                return Ok(Step::Statements(done));
                            }
                        }
                        c if c.is_whitespace() => {}
                        c => self.toks.push(Tok::Punct(c)),
                    }
                    i += 1;
                }
                Lex::Quote { extended } => {
                    if extended && c == '\\' {
                        if self.lit.len() < KEPT {
                            self.lit.push(c);
                        }
                        i += 2; // the escaped character, whatever it is
                        continue;
                    }
                    if c == '\'' {
                        if next == Some('\'') {
                            i += 2;
                            continue;
                        }
                        let lit = std::mem::take(&mut self.lit);
                        self.toks.push(Tok::Str(lit));
                        self.lex = Lex::Normal;
                    } else if self.lit.chars().count() < KEPT {
                        self.lit.push(c);
                    }
                    i += 1;
                }
                Lex::Ident => {
                    if c == '"' {
                        if next == Some('"') {
                            self.lit.push('"');
                            i += 2;
                            continue;
                        }
                        let name = std::mem::take(&mut self.lit);
                        self.toks.push(Tok::Ident(name));
                        self.lex = Lex::Normal;
                    } else if self.lit.chars().count() < KEPT {
                        self.lit.push(c);
                    }
                    i += 1;
                }
                Lex::Block(depth) => {
                    if c == '/' && next == Some('*') {
                        self.lex = Lex::Block(depth + 1);
                        i += 2;
                    } else if c == '*' && next == Some('/') {
                        self.lex = if depth == 1 {
                            Lex::Normal
                        } else {
                            Lex::Block(depth - 1)
                        };
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                Lex::Dollar(tag) => {
                    if line[at..].starts_with(tag.as_str()) {
                        self.lex = Lex::Normal;
                        i += tag.chars().count();
                    } else {
                        i += 1;
                    }
                }
            }
        }
        // A word never spans lines; a literal may.
        if self.lex == Lex::Normal {
            let word = std::mem::take(&mut self.word);
            self.end_word(word);
        } else if let Lex::Quote { .. } | Lex::Ident = self.lex
            && self.lit.chars().count() < KEPT
        {
            self.lit.push('\n');
        }
        self.text.push_str(&line[start..]);
        self.text.push('\n');
        if done.is_empty() {
            Ok(Step::Held)
        } else {
            Ok(Step::Statements(done))
        }
    }

    /// The end of the dump: what is still held (comments after the last
    /// statement), if anything.
    ///
    /// # Errors
    /// A [`Refusal`] when the dump ends inside a statement, literal or COPY:
    /// a truncated dump.
    pub fn finish(&mut self) -> Result<String, Refusal> {
        if self.copy {
            return Err(self.refuse("the dump ends inside COPY data (truncated)"));
        }
        if self.lex != Lex::Normal || !self.toks.is_empty() {
            return Err(self.refuse("the dump ends inside a statement (truncated)"));
        }
        Ok(std::mem::take(&mut self.text))
    }

    fn refuse(&self, reason: &str) -> Refusal {
        Refusal {
            line: self.line,
            reason: reason.to_owned(),
        }
    }

    fn end_word(&mut self, word: String) {
        if word.is_empty() {
            return;
        }
        if word.starts_with(|c: char| c.is_ascii_digit()) {
            self.toks.push(Tok::Punct('0'));
            return;
        }
        let lower = word.to_ascii_lowercase();
        // psql's heuristic (psqlscan.l): inside CREATE [OR REPLACE] FUNCTION or
        // PROCEDURE, BEGIN … END (and CASE … END within) do not end at a `;`.
        if self.words < 4
            && matches!(
                lower.as_str(),
                "create" | "function" | "procedure" | "or" | "replace"
            )
        {
            self.first[self.words] = lower.as_bytes()[0];
        }
        self.words += 1;
        let f = self.first;
        let routine = f[0] == b'c'
            && (f[1] == b'f'
                || f[1] == b'p'
                || (f[1] == b'o' && f[2] == b'r' && (f[3] == b'f' || f[3] == b'p')));
        if routine && self.paren == 0 {
            match lower.as_str() {
                "begin" => self.begin += 1,
                "case" if self.begin >= 1 => self.begin += 1,
                "end" => self.begin = self.begin.saturating_sub(1),
                _ => {}
            }
        }
        self.toks.push(Tok::Word(word.to_ascii_uppercase()));
    }

    fn finish_statement(&mut self) -> Result<Statement, Refusal> {
        let toks = std::mem::take(&mut self.toks);
        let text = std::mem::take(&mut self.text);
        self.paren = 0;
        self.begin = 0;
        self.first = [0; 4];
        self.words = 0;
        let (verdict, copy) = judge(&toks, &text).map_err(|r| self.refuse(&r))?;
        Ok(Statement {
            text,
            line: self.line,
            verdict,
            copy,
        })
    }
}

fn word(t: Option<&Tok>) -> &str {
    match t {
        Some(Tok::Word(w)) => w,
        _ => "",
    }
}

/// A name as the server would see it: bare words fold to lower case.
fn name(t: Option<&Tok>) -> Option<String> {
    match t? {
        Tok::Word(w) => Some(w.to_ascii_lowercase()),
        Tok::Ident(s) | Tok::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// The statement's verdict and whether it starts COPY data, or why it is refused.
fn judge(toks: &[Tok], text: &str) -> Result<(Verdict, bool), String> {
    let w = |i: usize| word(toks.get(i));
    let lower = text.to_ascii_lowercase();
    if let Some(s) = FORBIDDEN_SETTINGS.iter().find(|s| lower.contains(*s)) {
        return Err(format!("a statement touching {s}"));
    }
    // Code: a routine's or DO block's LANGUAGE, outside its parameter list (where
    // `language` may be a parameter's name).
    let routine = w(0) == "DO"
        || (w(0) == "CREATE"
            && (matches!(w(1), "FUNCTION" | "PROCEDURE")
                || (w(1) == "OR"
                    && w(2) == "REPLACE"
                    && matches!(w(3), "FUNCTION" | "PROCEDURE"))));
    let mut depth = 0u32;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth = depth.saturating_sub(1),
            Tok::Word(x) if FORBIDDEN_FUNCTIONS.contains(&x.as_str()) => {
                return Err(format!("a call of {}", x.to_ascii_lowercase()));
            }
            Tok::Word(x) if routine && depth == 0 && x == "LANGUAGE" => {
                let lang = name(toks.get(i + 1))
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if lang != "sql" && lang != "plpgsql" {
                    return Err(format!(
                        "code in language {lang:?} (only sql and plpgsql load)"
                    ));
                }
            }
            _ => {}
        }
    }
    // The dump's lexing assumptions must hold for psql too.
    if lower.contains("standard_conforming_strings") || lower.contains("client_encoding") {
        let (setting, value) = (
            w(1),
            name(toks.get(3)).unwrap_or_default().to_ascii_lowercase(),
        );
        let ok = w(0) == "SET"
            && matches!(toks.get(2), Some(Tok::Punct('=')) | Some(Tok::Word(_)))
            && toks.len() == 4
            && match setting {
                "STANDARD_CONFORMING_STRINGS" => value == "on",
                "CLIENT_ENCODING" => value == "utf8" || value == "utf-8",
                _ => false,
            };
        if !ok {
            return Err("a change of standard_conforming_strings or client_encoding".into());
        }
    }
    let refused = |what: &str| Err(format!("{what} (reaches outside the database)"));
    let mut i = 0;
    match w(0) {
        "CREATE" => {
            i += 1;
            if w(i) == "OR" && w(i + 1) == "REPLACE" {
                i += 2;
            }
            match w(i) {
                "EXTENSION" => {
                    i += 1;
                    if w(i) == "IF" {
                        i += 3;
                    }
                    return extension(name(toks.get(i)), "CREATE EXTENSION");
                }
                "TABLESPACE" | "SERVER" | "FOREIGN" | "LANGUAGE" | "TRUSTED" | "PROCEDURAL"
                | "ROLE" | "USER" | "GROUP" | "SUBSCRIPTION" | "ACCESS" => {
                    return refused(&format!("CREATE {}", w(i)));
                }
                "EVENT" => return refused("CREATE EVENT TRIGGER"),
                _ => {}
            }
        }
        "DROP" | "COMMENT" | "ALTER" => {
            let at = if w(0) == "COMMENT" { 2 } else { 1 };
            if w(0) == "COMMENT" && w(1) != "ON" {
                return Ok((Verdict::Load, false));
            }
            match w(at) {
                "EXTENSION" => {
                    let mut n = at + 1;
                    if w(n) == "IF" {
                        n += 2;
                    }
                    let what = format!("{} EXTENSION", w(0));
                    return extension(name(toks.get(n)), &what);
                }
                "SYSTEM" | "ROLE" | "USER" | "GROUP" if w(0) != "COMMENT" => {
                    return refused(&format!("{} {}", w(0), w(at)));
                }
                _ => {}
            }
            if w(0) == "ALTER"
                && toks
                    .windows(2)
                    .any(|p| word(p.first()) == "OWNER" && word(p.get(1)) == "TO")
            {
                return Ok((Verdict::Ownership, false));
            }
        }
        "LOAD" => return refused("LOAD"),
        "SET" | "RESET" => {
            let mut n = 1;
            if matches!(w(n), "SESSION" | "LOCAL") {
                n += 1;
            }
            if matches!(w(n), "ROLE" | "AUTHORIZATION")
                || (w(n) == "SESSION" && w(n + 1) == "AUTHORIZATION")
            {
                return Err("a change of the session's role".into());
            }
        }
        "COPY" => {
            let from = toks.iter().rposition(|t| word(Some(t)) == "FROM");
            let ok = from.is_some_and(|f| f + 2 == toks.len() && w(f + 1) == "STDIN");
            if !ok {
                return refused("COPY other than FROM stdin (a program or a file)");
            }
            return Ok((Verdict::Load, true));
        }
        _ => {}
    }
    Ok((Verdict::Load, false))
}

fn extension(name: Option<String>, what: &str) -> Result<(Verdict, bool), String> {
    let name = name.unwrap_or_default();
    if IMMICH_EXTENSIONS.contains(&name.as_str()) {
        Ok((Verdict::PreCreated, false))
    } else {
        Err(format!("{what} {name:?} (not one Immich uses)"))
    }
}

/// A fresh random key for psql's `\restrict`, which the dump cannot know.
///
/// # Errors
/// When the system's random source cannot be read.
pub fn restrict_key() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Checks that the psql at `psql` can run a dump restricted; returns its version.
///
/// # Errors
/// [`crate::Error::InvalidConfig`] naming the version when it is too old (or
/// unreadable); [`crate::Error::Spawn`] when it cannot be run.
pub fn check_psql(psql: &std::path::Path) -> crate::Result<String> {
    let out = std::process::Command::new(psql)
        .env_clear()
        .envs(crate::conn::child_env())
        .arg("--version")
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| crate::Error::Spawn {
            program: "psql",
            path: psql.to_owned(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let shown = psql.display();
    let Some((major, version)) = crate::version::parse_tool_version(&text) else {
        return Err(crate::Error::invalid(
            "psql",
            format!("{shown}: cannot read a version from `psql --version`"),
        ));
    };
    let minor = version
        .split('.')
        .nth(1)
        .and_then(|m| m.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .unwrap_or(0);
    if !psql_supports_restrict(major.0, minor) {
        return Err(crate::Error::invalid(
            "psql",
            format!(
                "{shown} is psql {version}, which cannot load a dump restricted (\\restrict needs \
                 psql 13.22, 14.19, 15.14, 16.10, 17.6 or newer): install a newer one or name it with --psql"
            ),
        ));
    }
    Ok(version)
}

/// Whether a psql of this version knows `\restrict` (added in the August 2025
/// minor releases for CVE-2025-8714).
pub fn psql_supports_restrict(major: u32, minor: u32) -> bool {
    match major {
        0..=12 => false,
        13 => minor >= 22,
        14 => minor >= 19,
        15 => minor >= 14,
        16 => minor >= 10,
        17 => minor >= 6,
        _ => true,
    }
}

#[cfg(test)]
mod tests;
