//! The GCS backend against real emulator processes (fake-gcs-server,
//! gcp-storage-emulator) and a scripted fault proxy, all on 127.0.0.1.
//! `shared/reference/gcs-emulators.md` says which emulator honours what.

mod auth;
mod emulators;
mod faults;
