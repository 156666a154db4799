//! The dump guard against pg_dump's own output and against planted forms.

use proptest::prelude::*;

use super::{DumpGuard, Refusal, Step, Verdict};

/// Runs a whole dump through a guard: the statements' verdicts, or the refusal.
fn run(dump: &str) -> Result<Vec<(Verdict, String)>, Refusal> {
    let mut g = DumpGuard::new();
    let mut out = Vec::new();
    for line in dump.lines() {
        if let Step::Statements(s) = g.line(line)? {
            out.extend(s.into_iter().map(|s| (s.verdict, s.text)));
        }
    }
    g.finish()?;
    Ok(out)
}

/// The shapes of a real Immich dump (pg_dump 15+ with --clean --if-exists).
const IMMICH_LIKE: &str = r#"--
-- PostgreSQL database dump
--

\restrict 0H3aGx9LqfYvKcFHd8eI2Yw5nEcBTkq

-- Dumped from database version 15.14
SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
DROP EXTENSION IF EXISTS vector;
DROP EXTENSION IF EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA public;
COMMENT ON EXTENSION "uuid-ossp" IS 'generate universally unique identifiers (UUIDs)';
CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;
CREATE FUNCTION public.immich_uuid_v7(p_timestamp timestamp with time zone DEFAULT clock_timestamp()) RETURNS uuid
    LANGUAGE sql
    AS $$
    select encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing substring(int8send((extract(epoch from p_timestamp)*1000)::bigint) from 3) from 1 for 6), 52, 1), 53, 1), 'hex')::uuid;
$$;
ALTER FUNCTION public.immich_uuid_v7(p_timestamp timestamp with time zone) OWNER TO postgres;
CREATE FUNCTION public.updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        clock_timestamp TIMESTAMP := clock_timestamp();
    BEGIN
        new."updatedAt" = clock_timestamp;
        new."updateId" = immich_uuid_v7(clock_timestamp);
        RAISE NOTICE 'a \backslash; and a quote '' here';
        return new;
    END;
$$;
CREATE TABLE public.asset (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    "originalPath" character varying NOT NULL,
    checksum bytea NOT NULL,
    "language" text DEFAULT E'it''s \\ a \' test'::text,
    embedding public.vector(512)
);
ALTER TABLE public.asset OWNER TO postgres;
/* a block comment with \! and ; /* nested */ still inside */
COPY public.asset (id, "originalPath", checksum, "language", embedding) FROM stdin;
0b9f6a4e-0000-0000-0000-000000000001	/data/library/admin/2024/IMG_0001.jpg	\\x0123abcd	\N	\N
\N	/data/library/admin/it's; \\ $$ -- /*.jpg	\\x00	\\N literal	[1,2,3]
\.
CREATE FUNCTION public.f() RETURNS integer
    LANGUAGE sql
    BEGIN ATOMIC
     SELECT 1;
     SELECT CASE WHEN true THEN 1 ELSE 2 END;
    END;
CREATE INDEX idx ON public.asset USING btree ("originalPath");
--
-- PostgreSQL database dump complete
--

\unrestrict 0H3aGx9LqfYvKcFHd8eI2Yw5nEcBTkq
"#;

#[test]
fn an_immich_dump_passes_with_its_extensions_and_owners_marked() {
    let got = run(IMMICH_LIKE).expect("a real dump's shapes pass");
    let verdicts: Vec<Verdict> = got.iter().map(|(v, _)| *v).collect();
    let count = |v| verdicts.iter().filter(|x| **x == v).count();
    assert_eq!(count(Verdict::PreCreated), 5, "{got:#?}");
    assert_eq!(count(Verdict::Ownership), 2, "{got:#?}");
    // The BEGIN ATOMIC body is one statement, not three.
    let atomic: Vec<_> = got
        .iter()
        .filter(|(_, t)| t.contains("BEGIN ATOMIC"))
        .collect();
    assert_eq!(atomic.len(), 1);
    assert!(atomic[0].1.trim_end().ends_with("END;"), "{}", atomic[0].1);
    // Nothing of pg_dump's own \restrict lines reaches the output.
    assert!(got.iter().all(|(_, t)| !t.contains("restrict")));
}

#[test]
fn the_three_planted_commands_of_the_report_are_refused() {
    for (planted, line) in [
        ("\\! touch /tmp/pwned\nSET a = 1;\n", 1),
        (
            "\\restrict abc\n\\unrestrict abc\n\\! touch /tmp/pwned\n",
            3,
        ),
        ("SET a = 1;\n\\o |touch /tmp/pwned\nSELECT 1;\n", 2),
        ("SELECT 1; \\! touch /tmp/pwned\n", 1),
        ("SELECT 1 \\gexec\n", 1),
    ] {
        let err = run(planted).unwrap_err();
        assert_eq!(err.line, line, "{planted:?}: {err}");
        assert!(err.reason.contains("meta-command"), "{err}");
        assert!(
            !err.to_string().contains("pwned"),
            "the line is not repeated"
        );
    }
}

#[test]
fn statements_that_reach_outside_are_refused_by_name() {
    for (sql, what) in [
        ("CREATE EXTENSION plperlu;", "plperlu"),
        ("create extension if not exists \"adminpack\";", "adminpack"),
        ("LOAD 'auto_explain';", "LOAD"),
        ("CREATE TABLESPACE t LOCATION '/tmp';", "TABLESPACE"),
        ("CREATE SERVER s FOREIGN DATA WRAPPER w;", "SERVER"),
        ("CREATE FOREIGN TABLE f (a int) SERVER s;", "FOREIGN"),
        ("CREATE OR REPLACE TRUSTED LANGUAGE plperl;", "TRUSTED"),
        ("CREATE LANGUAGE plperlu;", "LANGUAGE"),
        (
            "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f();",
            "EVENT",
        ),
        ("ALTER SYSTEM SET work_mem = '1GB';", "SYSTEM"),
        ("CREATE ROLE r SUPERUSER;", "ROLE"),
        ("ALTER USER postgres PASSWORD 'x';", "USER"),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'x', 'y';",
            "\"c\"",
        ),
        (
            "CREATE OR REPLACE FUNCTION f() RETURNS int AS $$ 1 $$ LANGUAGE 'plperlu';",
            "plperlu",
        ),
        ("DO LANGUAGE plpython3u $$ import os $$;", "plpython3u"),
        ("COPY public.asset TO PROGRAM 'sh';", "COPY"),
        ("COPY public.asset FROM '/etc/passwd';", "COPY"),
        ("COPY public.asset (id) FROM PROGRAM 'id';", "COPY"),
        ("SELECT lo_import('/etc/passwd');", "lo_import"),
        ("SELECT pg_catalog.lo_export(1, '/tmp/x');", "lo_export"),
        (
            "SELECT set_config('session_preload_libraries', 'x', false);",
            "preload",
        ),
        ("SET local_preload_libraries = 'x';", "preload"),
        (
            "ALTER DATABASE immich SET archive_command = 'sh';",
            "archive_command",
        ),
        (
            "SET standard_conforming_strings = off;",
            "standard_conforming",
        ),
        ("SET client_encoding = 'SJIS';", "client_encoding"),
        ("SET ROLE postgres;", "role"),
        ("SET SESSION AUTHORIZATION postgres;", "role"),
    ] {
        let err = run(&format!("SET a = 1;\n{sql}\n")).unwrap_err();
        assert_eq!(err.line, 2, "{sql}: {err}");
        assert!(err.reason.contains(what), "{sql}: {err}");
    }
}

#[test]
fn truncated_dumps_and_copy_oddities_are_refused() {
    assert!(
        run("CREATE TABLE t (\n a int")
            .unwrap_err()
            .reason
            .contains("truncated")
    );
    assert!(
        run("COPY t (a) FROM stdin;\n1\n")
            .unwrap_err()
            .reason
            .contains("truncated")
    );
    assert!(
        run("SELECT 'open\n")
            .unwrap_err()
            .reason
            .contains("truncated")
    );
    let e = run("COPY t (a) FROM stdin;\n\\! id\n\\.\n").unwrap_err();
    assert_eq!(e.line, 2);
    let e = run("COPY t (a) FROM stdin; \\! id\n").unwrap_err();
    assert_eq!(e.line, 1);
}

#[test]
fn restrict_support_follows_the_minor_releases() {
    use super::psql_supports_restrict as ok;
    assert!(!ok(15, 13) && ok(15, 14) && ok(15, 18));
    assert!(!ok(16, 9) && ok(16, 10));
    assert!(!ok(17, 5) && ok(17, 6));
    assert!(ok(18, 0) && !ok(12, 99) && ok(14, 19) && !ok(13, 21));
}

// ---- property tests: legal pg_dump output interleaved with forbidden forms ----

/// Legal statements, with `~` where a line break may go.
const LEGAL: &[&str] = &[
    "SET~statement_timeout~=~0;",
    "SELECT~pg_catalog.set_config('search_path',~'',~false);",
    "CREATE~TABLE~public.t~(\n~~~~id~uuid~NOT~NULL,\n~~~~\"weird;name\\\"~text~DEFAULT~'a\\b;c'::text\n);",
    "COMMENT~ON~TABLE~public.t~IS~E'it''s~\\\\~fine;~\\'~ok';",
    "CREATE~FUNCTION~public.f()~RETURNS~trigger\n~~~~LANGUAGE~plpgsql\n~~~~AS~$_$\nBEGIN\n~~RAISE~NOTICE~'x\\y;~%',~1;~--~\\!~not~a~command\n~~RETURN~NEW;\nEND\n$_$;",
    "DO~$$~BEGIN~PERFORM~1;~END~$$;",
    "/*~a~\\!~comment;~/*~nested~*/~*/~SELECT~1;",
    "-- a comment with \\! and ;",
    "CREATE~EXTENSION~IF~NOT~EXISTS~vector~WITH~SCHEMA~public;",
    "ALTER~TABLE~public.t~OWNER~TO~postgres;",
    "CREATE~FUNCTION~public.g()~RETURNS~integer~LANGUAGE~sql\n~BEGIN~ATOMIC\n~SELECT~1;\n~SELECT~CASE~WHEN~true~THEN~1~END;\nEND;",
    "SELECT~U&'d\\0061t\\+000061';",
    "SELECT~$1abc$tag$;",
];

/// Forbidden statements, with `~` where a line break may go.
const FORBIDDEN: &[&str] = &[
    "CREATE~EXTENSION~plperlu;",
    "LOAD~'x';",
    "CREATE~TABLESPACE~t~LOCATION~'/tmp';",
    "CREATE~LANGUAGE~plperlu;",
    "ALTER~SYSTEM~SET~x~=~1;",
    "CREATE~ROLE~r~SUPERUSER;",
    "CREATE~FUNCTION~f()~RETURNS~int~LANGUAGE~c~AS~'x',~'y';",
    "COPY~t~TO~PROGRAM~'sh';",
    "COPY~t~(a)~FROM~PROGRAM~'sh';",
    "SELECT~lo_import('/etc/passwd');",
    "SET~session_preload_libraries~=~'x';",
    "SET~standard_conforming_strings~=~off;",
    "DO~LANGUAGE~plperlu~$$~1~$$;",
];

/// Meta-commands, placed on their own line or after a statement on its line.
const META: &[&str] = &[
    "\\! touch /tmp/x",
    "\\o |sh",
    "\\copy t from program 'sh'",
    "\\gexec",
    "\\set x 1",
];

fn render(template: &str, breaks: &[bool], caps: &[bool]) -> String {
    let mut out = String::new();
    for (n, part) in template.split('~').enumerate() {
        if n > 0 {
            out.push_str(
                if breaks
                    .get(n % breaks.len().max(1))
                    .copied()
                    .unwrap_or(false)
                {
                    "\n  "
                } else {
                    " "
                },
            );
        }
        // Bare keywords in random case: the server folds them, so must we.
        let keyword = part.chars().all(|c| c.is_ascii_alphabetic()) && part.len() > 1;
        if keyword && caps.get(n % caps.len().max(1)).copied().unwrap_or(false) {
            out.push_str(&part.to_ascii_lowercase());
        } else {
            out.push_str(part);
        }
    }
    out
}

fn copy_block(rows: &[String]) -> String {
    let mut s = String::from("COPY public.t (id, x) FROM stdin;\n");
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s.push_str("\\.");
    s
}

fn copy_row() -> impl Strategy<Value = String> {
    // Text-format COPY rows as pg_dump writes them: backslashes escaped.
    proptest::collection::vec(
        prop_oneof![
            Just("\\N".to_owned()),
            Just("\\\\".to_owned()),
            Just("\\t".to_owned()),
            Just("a;b".to_owned()),
            Just("'$$--/*".to_owned()),
            "[a-z0-9 ]{0,8}",
        ],
        1..4,
    )
    .prop_map(|cells| cells.join("\t"))
}

#[derive(Debug, Clone)]
enum Piece {
    Legal(usize),
    Copy(Vec<String>),
}

fn legal_dump() -> impl Strategy<Value = (Vec<Piece>, Vec<bool>, Vec<bool>)> {
    (
        proptest::collection::vec(
            prop_oneof![
                3 => (0..LEGAL.len()).prop_map(Piece::Legal),
                1 => proptest::collection::vec(copy_row(), 0..4).prop_map(Piece::Copy),
            ],
            1..12,
        ),
        proptest::collection::vec(any::<bool>(), 1..8),
        proptest::collection::vec(any::<bool>(), 1..8),
    )
}

fn render_pieces(pieces: &[Piece], breaks: &[bool], caps: &[bool]) -> Vec<String> {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Legal(i) => render(LEGAL[*i], breaks, caps),
            Piece::Copy(rows) => copy_block(rows),
        })
        .collect()
}

proptest! {
    #[test]
    fn legal_output_is_always_accepted((pieces, breaks, caps) in legal_dump(), indent in 0usize..3) {
        let text: Vec<String> = render_pieces(&pieces, &breaks, &caps)
            .into_iter()
            .map(|p| p.lines().map(|l| format!("{}{l}", " ".repeat(indent))).collect::<Vec<_>>().join("\n"))
            .collect();
        let dump = text.join("\n") + "\n";
        // COPY data must stay at column 0: indent only applies to SQL lines.
        let dump = if indent > 0 && pieces.iter().any(|p| matches!(p, Piece::Copy(_))) {
            render_pieces(&pieces, &breaks, &caps).join("\n") + "\n"
        } else {
            dump
        };
        let got = run(&dump);
        prop_assert!(got.is_ok(), "{:?}\n{dump}", got.err());
        let comments_only = pieces.iter().filter(|p| matches!(p, Piece::Legal(7))).count();
        prop_assert_eq!(got.unwrap().len(), pieces.len() - comments_only);
    }

    #[test]
    fn a_forbidden_statement_anywhere_is_refused(
        (pieces, breaks, caps) in legal_dump(),
        at in any::<prop::sample::Index>(),
        which in 0..FORBIDDEN.len(),
    ) {
        let mut parts = render_pieces(&pieces, &breaks, &caps);
        let at = at.index(parts.len() + 1);
        let before: usize = parts[..at].iter().map(|p| p.lines().count()).sum();
        let bad = render(FORBIDDEN[which], &breaks, &caps);
        let bad_lines = bad.lines().count() as u64;
        parts.insert(at, bad);
        let dump = parts.join("\n") + "\n";
        let err = run(&dump);
        prop_assert!(err.is_err(), "accepted:\n{dump}");
        let line = err.unwrap_err().line;
        prop_assert!(line > before as u64 && line <= before as u64 + bad_lines, "line {line}, expected after {before}:\n{dump}");
    }

    #[test]
    fn a_meta_command_anywhere_outside_a_literal_is_refused(
        (pieces, breaks, caps) in legal_dump(),
        at in any::<prop::sample::Index>(),
        which in 0..META.len(),
        mid_line in any::<bool>(),
        lead in "[ \t]{0,2}",
    ) {
        let mut parts = render_pieces(&pieces, &breaks, &caps);
        let at = at.index(parts.len() + 1);
        let before: usize = parts[..at].iter().map(|p| p.lines().count()).sum();
        let bad = if mid_line {
            format!("SELECT 1; {lead}{}", META[which])
        } else {
            format!("{lead}{}", META[which])
        };
        parts.insert(at, bad);
        let dump = parts.join("\n") + "\n";
        let err = run(&dump);
        prop_assert!(err.is_err(), "accepted:\n{dump}");
        prop_assert_eq!(err.unwrap_err().line, before as u64 + 1, "{}", dump);
    }
}
