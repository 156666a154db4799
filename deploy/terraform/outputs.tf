output "bucket" {
  description = "GCS_BUCKET for the Kubernetes Secret."
  value       = google_storage_bucket.backup.name
}

output "backup_service_account" {
  description = "The backup's service account: make its key (GCS_CREDENTIALS) or annotate the immich-backup ServiceAccount with it (Workload Identity)."
  value       = google_service_account.backup.email
}

output "verify_service_account" {
  description = "The verifier's read-only service account (GCS_VERIFY_CREDENTIALS, or the immich-backup-verify ServiceAccount's annotation)."
  value       = google_service_account.verify.email
}
