//! Integration tests against real PostgreSQL servers: each test starts its own
//! scratch cluster (about a second) from the system's binaries, dumps through the
//! real `pg_dump` into a real local directory store, and checks what arrived.
//! Failure cases use wrapper scripts set as the `pg_dump` path, the setting a user
//! would change.

mod dump;
mod failures;
mod guarded;
mod retention;
mod support;
