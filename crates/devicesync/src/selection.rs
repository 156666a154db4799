//! Device albums and which of them are backed up.
//!
//! A device album is the directory that directly contains a file, named by that
//! directory's last component (what `immich upload --album` does). Two folders with
//! the same name under different roots are one album, as on a phone where
//! "Camera" is one album whatever storage it lives on.
//!
//! Selection is the seed's logic: `Backup Candidates = Selected − Excluded`, where
//! "Recents" selects every album and an exclusion always wins.

use std::collections::BTreeSet;
use std::path::Path;

/// The album name that selects every album (the mobile app's "Recents").
pub const RECENTS: &str = "Recents";

/// Which albums are backed up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `None` is "Recents": every album.
    selected: Option<BTreeSet<String>>,
    excluded: BTreeSet<String>,
}

/// What the selection says about one album.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlbumChoice {
    /// Backed up.
    Selected,
    /// Excluded (exclusion wins over selection).
    Excluded,
    /// Neither selected nor excluded: left alone.
    NotSelected,
}

impl AlbumChoice {
    /// `selected`, `excluded` or `not selected`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlbumChoice::Selected => "selected",
            AlbumChoice::Excluded => "excluded",
            AlbumChoice::NotSelected => "not selected",
        }
    }
}

impl Selection {
    /// Every album ("Recents"), nothing excluded.
    pub fn recents() -> Selection {
        Selection::default()
    }

    /// These albums. An empty list, or one naming [`RECENTS`], is "Recents".
    pub fn albums<I, S>(names: I) -> Selection
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let set: BTreeSet<String> = names.into_iter().map(Into::into).collect();
        let selected = (!set.is_empty() && !set.contains(RECENTS)).then_some(set);
        Selection {
            selected,
            excluded: BTreeSet::new(),
        }
    }

    /// The same selection with these albums excluded as well.
    pub fn excluding<I, S>(mut self, names: I) -> Selection
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.excluded.extend(names.into_iter().map(Into::into));
        self
    }

    /// Whether this is "Recents" (every album not excluded).
    pub fn is_recents(&self) -> bool {
        self.selected.is_none()
    }

    /// The albums named as selected (`None` for "Recents").
    pub fn selected(&self) -> Option<&BTreeSet<String>> {
        self.selected.as_ref()
    }

    /// The excluded albums.
    pub fn excluded(&self) -> &BTreeSet<String> {
        &self.excluded
    }

    /// What happens to `album`.
    pub fn choice(&self, album: &str) -> AlbumChoice {
        if self.excluded.contains(album) {
            AlbumChoice::Excluded
        } else if self.selected.as_ref().is_none_or(|s| s.contains(album)) {
            AlbumChoice::Selected
        } else {
            AlbumChoice::NotSelected
        }
    }

    /// Whether `album` is backed up.
    pub fn includes(&self, album: &str) -> bool {
        self.choice(album) == AlbumChoice::Selected
    }
}

/// The device album of `file`: the name of the directory that directly contains
/// it. A file directly in a root belongs to the root's own name; a root with no
/// name (`/`) gives `/`.
pub fn album_of(file: &Path) -> String {
    file.parent()
        .and_then(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .or_else(|| Some(p.display().to_string()))
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| ".".to_owned())
}
