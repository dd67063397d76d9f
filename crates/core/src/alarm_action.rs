//! A receiver's answer to an alarm from outside the gRPC stream (the admin API's
//! `/alarms/{id}/actions` with a centre token, a webhook's signed callback): what it asks, checked
//! field by field, turned into the router's `AlarmInput` for the receiver it comes from.
use serde::Deserialize;

use crate::alarm::AlarmInput;
use crate::CentreId;

/// What the receiver does.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmAction {
    /// "receipt", "accept" or "close".
    pub action: String,
    /// Who accepted (for "accept"), 1-64 printable characters.
    #[serde(default)]
    pub operator: String,
    /// How it ended (for "close"), 1-64 printable characters.
    #[serde(default)]
    pub outcome: String,
    /// Free text with the close, up to 2000 characters.
    #[serde(default)]
    pub note: String,
}

/// A field that is wrong and why.
pub type FieldProblem = (String, String);

impl AlarmAction {
    /// The router input for `centre`, or every field that is wrong.
    pub fn input(&self, centre: &CentreId) -> Result<AlarmInput, Vec<FieldProblem>> {
        let mut errors = Vec::new();
        let input = match self.action.as_str() {
            "receipt" => AlarmInput::Receipt {
                centre: centre.clone(),
            },
            "accept" => {
                errors.extend(one_line("operator", &self.operator, 64));
                AlarmInput::Accept {
                    centre: centre.clone(),
                    operator: self.operator.trim().to_owned(),
                }
            }
            "close" => {
                errors.extend(one_line("outcome", &self.outcome, 64));
                errors.extend(note("note", &self.note, 2000));
                let outcome = match self.note.trim() {
                    "" => self.outcome.trim().to_owned(),
                    n => format!("{}: {n}", self.outcome.trim()),
                };
                AlarmInput::Close {
                    centre: centre.clone(),
                    outcome,
                }
            }
            _ => {
                errors.push((
                    "action".into(),
                    "must be \"receipt\", \"accept\" or \"close\"".into(),
                ));
                AlarmInput::Dispatch
            }
        };
        match errors.is_empty() {
            true => Ok(input),
            false => Err(errors),
        }
    }
}

/// An id, an outcome, a reason from a receiver (whichever way it comes): required, at most
/// `max` characters, one line without any control character.
pub fn one_line(field: &str, v: &str, max: usize) -> Option<FieldProblem> {
    let why = if v.trim().is_empty() {
        "is required"
    } else if v.chars().count() > max {
        "is too long"
    } else if v.chars().any(char::is_control) {
        "must be one line of printable characters"
    } else {
        return None;
    };
    Some((field.into(), why.into()))
}

/// Free text with an answer: may be empty or span lines, at most `max` printable characters.
pub fn note(field: &str, v: &str, max: usize) -> Option<FieldProblem> {
    if v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n') {
        return Some((field.into(), format!("at most {max} printable characters")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(action: &str, operator: &str, outcome: &str, note: &str) -> AlarmAction {
        AlarmAction {
            action: action.into(),
            operator: operator.into(),
            outcome: outcome.into(),
            note: note.into(),
        }
    }

    #[test]
    fn each_action_becomes_its_input_for_the_receiver() {
        let c = CentreId::new("hook");
        assert_eq!(
            action("receipt", "", "", "").input(&c),
            Ok(AlarmInput::Receipt { centre: c.clone() })
        );
        assert_eq!(
            action("accept", " Anna ", "", "").input(&c),
            Ok(AlarmInput::Accept {
                centre: c.clone(),
                operator: "Anna".into()
            })
        );
        assert_eq!(
            action("close", "", "helped up", "no injury").input(&c),
            Ok(AlarmInput::Close {
                centre: c.clone(),
                outcome: "helped up: no injury".into()
            })
        );
    }

    #[test]
    fn every_wrong_field_is_named() {
        let c = CentreId::new("hook");
        let fields = |a: AlarmAction| -> Vec<String> {
            a.input(&c)
                .unwrap_err()
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        assert_eq!(fields(action("dance", "", "", "")), ["action"]);
        assert_eq!(fields(action("accept", "  ", "", "")), ["operator"]);
        assert_eq!(fields(action("accept", "a\nb", "", "")), ["operator"]);
        assert_eq!(
            fields(action("close", "", &"x".repeat(65), &"y".repeat(2001))),
            ["outcome", "note"]
        );
    }
}
