//! The GCS backend against real emulator processes (fake-gcs-server,
//! gcp-storage-emulator) and a scripted fault proxy, all on 127.0.0.1.
//! `shared/reference/gcs-emulators.md` says which emulator honours what.

mod auth;
mod emulators;
mod faults;

/// A store on a test emulator (no auth, fast retries).
pub(crate) trait OnEmulator {
    fn config(&self) -> imb_gcs::GcsConfig;
    fn store(&self) -> imb_gcs::GcsStore {
        imb_gcs::GcsStore::new(self.config()).expect("store builds")
    }
}

impl OnEmulator for imb_testkit::gcs::Emulator {
    fn config(&self) -> imb_gcs::GcsConfig {
        let mut c = imb_gcs::GcsConfig::new(
            self.bucket.clone(),
            std::sync::Arc::new(imb_gcs::Credentials::None),
        );
        c.endpoint = self.endpoint.clone();
        c.retry = imb_gcs::RetryPolicy::fast();
        c
    }
}
