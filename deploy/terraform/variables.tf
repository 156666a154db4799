variable "project" {
  description = "The Google Cloud project that holds the bucket and the service accounts."
  type        = string
}

variable "bucket_name" {
  description = "The bucket's globally unique name (GCS_BUCKET in the Kubernetes Secret)."
  type        = string
}

variable "location" {
  description = "Bucket location: a region (us-central1), dual-region or multi-region (EU). Another continent than the Immich server keeps the copy off-site."
  type        = string
  default     = "EU"
}

variable "storage_class" {
  description = "Default storage class. backup names its classes per object (library ARCHIVE, manifests and dumps STANDARD), so this applies only to objects that name none."
  type        = string
  default     = "ARCHIVE"
}

variable "retention_days" {
  description = "Bucket retention policy in days: no object can be deleted or replaced before it is this old, whatever happens to a key. 0 sets none."
  type        = number
  default     = 30
}

variable "lock_retention" {
  description = "Lock the retention policy. Irreversible: the bucket cannot then be deleted nor the period shortened until every object has aged out."
  type        = bool
  default     = false
}

variable "soft_delete_days" {
  description = "Soft-delete window in days (0 turns it off). Deleted objects stay restorable this long; with Archive's 365-day minimum it costs little extra."
  type        = number
  default     = 7
}

variable "grant_delete" {
  description = "Also let the backup delete objects: for db_backup_retention's pruning of old dumps and the manifest.db convenience copy's replacement (docs/gcs.md). Without it both are refused and reported, never fatal."
  type        = bool
  default     = false
}

variable "workload_identity" {
  description = "On GKE, bind each Kubernetes ServiceAccount (namespace/name) to its Google service account so no JSON key is needed; null for none."
  type = object({
    namespace       = string
    backup_account  = optional(string, "immich-backup")
    verify_account  = optional(string, "immich-backup-verify")
  })
  default = null
}
