# The backup bucket and two least-privilege service accounts: the backup creates
# and reads objects in this bucket only; the verifier only reads. This replaces the
# seed's "Storage Admin", which could also delete every backup and the bucket.

resource "google_storage_bucket" "backup" {
  #checkov:skip=CKV_GCP_78:GCS refuses versioning beside a retention policy; backup never overwrites, and retention plus soft delete guard against deletes
  #checkov:skip=CKV_GCP_62:access is audited by Cloud Audit Logs (enable Data Access logs for storage.googleapis.com), which Google recommends over usage logs
  name                        = var.bucket_name
  location                    = var.location
  storage_class               = var.storage_class
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Destroying the Terraform state never takes the backups with it.
  force_destroy = false

  versioning {
    # backup never overwrites (every create is conditional), so versions add nothing.
    enabled = false
  }

  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_days * 86400
  }

  dynamic "retention_policy" {
    for_each = var.retention_days > 0 ? [1] : []
    content {
      retention_period = var.retention_days * 86400
      is_locked        = var.lock_retention
    }
  }

  # No lifecycle rule: nothing here deletes library objects. Old database dumps are
  # pruned by backup itself (db_backup_retention), which grant_delete allows.
}

resource "google_service_account" "backup" {
  account_id   = "immich-backup"
  display_name = "immich-backup: creates and reads backup objects"
}

resource "google_service_account" "verify" {
  account_id   = "immich-backup-verify"
  display_name = "immich-backup restore-verify: reads backup objects"
}

resource "google_storage_bucket_iam_member" "backup_create" {
  bucket = google_storage_bucket.backup.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.backup.email}"
}

resource "google_storage_bucket_iam_member" "backup_read" {
  bucket = google_storage_bucket.backup.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.backup.email}"
}

# Optional: deletes, for the dump retention and the manifest.db replacement.
resource "google_project_iam_custom_role" "backup_delete" {
  count       = var.grant_delete ? 1 : 0
  role_id     = "immichBackupObjectDelete"
  title       = "immich-backup object delete"
  description = "Delete objects: dump retention and the manifest.db convenience copy."
  permissions = ["storage.objects.delete"]
}

resource "google_storage_bucket_iam_member" "backup_delete" {
  count  = var.grant_delete ? 1 : 0
  bucket = google_storage_bucket.backup.name
  role   = google_project_iam_custom_role.backup_delete[0].id
  member = "serviceAccount:${google_service_account.backup.email}"
}

resource "google_storage_bucket_iam_member" "verify_read" {
  bucket = google_storage_bucket.backup.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.verify.email}"
}

# GKE Workload Identity: the pods act as these accounts without a key.
resource "google_service_account_iam_member" "backup_workload_identity" {
  count              = var.workload_identity == null ? 0 : 1
  service_account_id = google_service_account.backup.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project}.svc.id.goog[${var.workload_identity.namespace}/${var.workload_identity.backup_account}]"
}

resource "google_service_account_iam_member" "verify_workload_identity" {
  count              = var.workload_identity == null ? 0 : 1
  service_account_id = google_service_account.verify.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project}.svc.id.goog[${var.workload_identity.namespace}/${var.workload_identity.verify_account}]"
}
