//! The label set: the seven FER2013 emotions, in FER2013 order.
//!
//! | index | name       |
//! |-------|------------|
//! | 0     | `angry`    |
//! | 1     | `disgust`  |
//! | 2     | `fear`     |
//! | 3     | `happy`    |
//! | 4     | `sad`      |
//! | 5     | `surprise` |
//! | 6     | `neutral`  |
//!
//! The lowercase names are also the class folder names of the Kaggle image-folder layout of
//! FER2013 (`train/angry/*.png`, ...), the label names in the serial protocol and in manifests.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Number of emotion classes.
pub const NUM_CLASSES: usize = 7;

/// One of the seven FER2013 emotions. The discriminant is the FER2013 class index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Emotion {
    /// 0
    Angry = 0,
    /// 1
    Disgust = 1,
    /// 2
    Fear = 2,
    /// 3
    Happy = 3,
    /// 4
    Sad = 4,
    /// 5
    Surprise = 5,
    /// 6
    Neutral = 6,
}

/// A label that is neither one of the seven names nor an index 0..=6.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown emotion label {0:?}: expected one of angry, disgust, fear, happy, sad, surprise, neutral or an index 0-6"
)]
pub struct UnknownLabel(pub String);

impl Emotion {
    /// All emotions in FER2013 index order.
    pub const ALL: [Emotion; NUM_CLASSES] = [
        Emotion::Angry,
        Emotion::Disgust,
        Emotion::Fear,
        Emotion::Happy,
        Emotion::Sad,
        Emotion::Surprise,
        Emotion::Neutral,
    ];

    /// The FER2013 class index (0..=6).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The emotion with FER2013 class index `index`, if it is in 0..=6.
    pub fn from_index(index: usize) -> Option<Emotion> {
        Self::ALL.get(index).copied()
    }

    /// The lowercase name (`"happy"`): protocol, manifest and folder name.
    pub fn name(self) -> &'static str {
        match self {
            Emotion::Angry => "angry",
            Emotion::Disgust => "disgust",
            Emotion::Fear => "fear",
            Emotion::Happy => "happy",
            Emotion::Sad => "sad",
            Emotion::Surprise => "surprise",
            Emotion::Neutral => "neutral",
        }
    }

    /// A capitalised name for people (`"Happy"`).
    pub fn display_name(self) -> &'static str {
        match self {
            Emotion::Angry => "Angry",
            Emotion::Disgust => "Disgust",
            Emotion::Fear => "Fear",
            Emotion::Happy => "Happy",
            Emotion::Sad => "Sad",
            Emotion::Surprise => "Surprise",
            Emotion::Neutral => "Neutral",
        }
    }

    /// The names of all classes in index order, as stored in manifests.
    pub fn names() -> Vec<String> {
        Self::ALL.iter().map(|e| e.name().to_string()).collect()
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Emotion {
    type Err = UnknownLabel;

    /// Accepts a name in any case (`Happy`, `HAPPY`), `surprised`/`fearful`/`disgusted` as
    /// written by some data sets, or a decimal index `0`..=`6`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Ok(i) = t.parse::<usize>() {
            return Emotion::from_index(i).ok_or_else(|| UnknownLabel(s.to_string()));
        }
        let lower = t.to_ascii_lowercase();
        let e = match lower.as_str() {
            "angry" | "anger" => Emotion::Angry,
            "disgust" | "disgusted" => Emotion::Disgust,
            "fear" | "fearful" => Emotion::Fear,
            "happy" | "happiness" => Emotion::Happy,
            "sad" | "sadness" => Emotion::Sad,
            "surprise" | "surprised" => Emotion::Surprise,
            "neutral" => Emotion::Neutral,
            _ => return Err(UnknownLabel(s.to_string())),
        };
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_fer2013_order() {
        let names: Vec<_> = Emotion::ALL.iter().map(|e| (e.index(), e.name())).collect();
        assert_eq!(
            names,
            vec![
                (0, "angry"),
                (1, "disgust"),
                (2, "fear"),
                (3, "happy"),
                (4, "sad"),
                (5, "surprise"),
                (6, "neutral")
            ]
        );
    }

    #[test]
    fn parses_names_aliases_and_indices() {
        assert_eq!("HAPPY".parse::<Emotion>(), Ok(Emotion::Happy));
        assert_eq!(" surprised ".parse::<Emotion>(), Ok(Emotion::Surprise));
        assert_eq!("2".parse::<Emotion>(), Ok(Emotion::Fear));
        assert!("7".parse::<Emotion>().is_err());
        assert!("contempt".parse::<Emotion>().is_err());
        let err = "joy".parse::<Emotion>().unwrap_err().to_string();
        assert!(err.contains("joy") && err.contains("neutral"), "{err}");
    }

    #[test]
    fn round_trips_through_name_and_serde() {
        for e in Emotion::ALL {
            assert_eq!(e.name().parse::<Emotion>(), Ok(e));
            let json = serde_json::to_string(&e).expect("serialise");
            assert_eq!(json, format!("\"{}\"", e.name()));
            assert_eq!(serde_json::from_str::<Emotion>(&json).expect("parse"), e);
        }
    }
}
