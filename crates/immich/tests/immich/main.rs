//! The Immich client and storage backend against the test Immich server (on
//! 127.0.0.1, started per test), and the test server itself checked by the real
//! `@immich/cli` 3.2.2 (installed by `cargo xtask test`).

mod cli;
mod client;
mod faults;
mod store;

use imb_immich::AssetUpload;
use imb_storage::Payload;

/// JPEG-looking bytes, distinct per `seed`.
pub(crate) fn jpg(seed: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0xff, 0xd8, 0xff, 0xe0];
    v.extend(imb_storage::conformance::pattern(
        len.saturating_sub(4),
        seed,
    ));
    v
}

/// An upload of `data` as `name`, with fixed times.
pub(crate) fn upload_of(name: &str, data: &[u8]) -> AssetUpload {
    AssetUpload::new(
        name,
        Payload::from(data.to_vec()),
        imb_hash::digest(data).sha1,
        "2024-05-01T10:00:00.000Z",
        "2024-05-02T11:00:00.000+02:00",
    )
}

/// SHA-1 in hex.
pub(crate) fn sha1_hex(data: &[u8]) -> String {
    imb_hash::hex(&imb_hash::digest(data).sha1)
}

/// A client of the test Immich server (fast retries).
pub(crate) trait OnTestServer {
    fn client_config_for(&self, key: &str) -> imb_immich::ClientConfig;
    fn client_config(&self) -> imb_immich::ClientConfig;
    fn client(&self) -> imb_immich::ImmichClient {
        imb_immich::ImmichClient::new(self.client_config()).expect("client builds")
    }
}

impl OnTestServer for imb_testkit::immich::TestServer {
    fn client_config_for(&self, key: &str) -> imb_immich::ClientConfig {
        imb_immich::ClientConfig::new(
            self.api_url(),
            imb_immich::ApiKey::new(key, "test server").expect("valid test key"),
        )
        .with_retry(imb_immich::RetryPolicy::fast())
    }
    fn client_config(&self) -> imb_immich::ClientConfig {
        self.client_config_for(self.key())
    }
}
