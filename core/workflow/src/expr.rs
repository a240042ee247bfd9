//! `depends` expressions, as Argo writes them: `build.Succeeded && !lint.Failed`,
//! `(a || b.Skipped) && c.AnySucceeded`.
//!
//! A bare node name means `name.Succeeded || name.Skipped`. A node is
//! tested only once it is fulfilled (Succeeded, Failed, Error, Skipped or
//! Omitted); until then the expression waits.

use std::collections::BTreeSet;

/// What an expression may ask of a node, in Argo's words.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::VariantArray,
)]
pub enum Outcome {
    Succeeded,
    Failed,
    Errored,
    Skipped,
    Omitted,
    /// A fan-out of which at least one item succeeded.
    AnySucceeded,
    /// A fan-out of which every item failed.
    AllFailed,
}

impl Outcome {
    /// Whether testing for it means the author handles the node failing.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::Failed | Outcome::Errored | Outcome::AllFailed
        )
    }
}

/// A parsed `depends` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `node` (no outcome) or `node.Outcome`.
    Ref {
        node: String,
        outcome: Option<Outcome>,
    },
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// Where an expression stops parsing, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {at}: {message}")]
pub struct ExprError {
    /// The offset in characters from the start of the expression.
    pub at: usize,
    pub message: String,
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            at: 0,
            end: text.chars().count(),
        };
        if p.tokens.is_empty() {
            return Err(ExprError {
                at: 0,
                message: "the expression is empty".into(),
            });
        }
        let e = p.or()?;
        match p.tokens.get(p.at) {
            None => Ok(e),
            Some((at, t)) => Err(ExprError {
                at: *at,
                message: format!("unexpected {}; expected && or ||", t.describe()),
            }),
        }
    }

    /// Every node the expression names.
    pub fn nodes(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.walk(&mut |node, _| {
            out.insert(node);
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a str, Option<Outcome>)) {
        match self {
            Expr::Ref { node, outcome } => f(node, *outcome),
            Expr::Not(e) => e.walk(f),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.walk(f);
                b.walk(f);
            }
        }
    }

    /// Its value, `test` telling whether a node has an outcome.
    pub fn eval(&self, test: &impl Fn(&str, Outcome) -> bool) -> bool {
        match self {
            Expr::Ref {
                node,
                outcome: Some(o),
            } => test(node, *o),
            Expr::Ref {
                node,
                outcome: None,
            } => test(node, Outcome::Succeeded) || test(node, Outcome::Skipped),
            Expr::Not(e) => !e.eval(test),
            Expr::And(a, b) => a.eval(test) && b.eval(test),
            Expr::Or(a, b) => a.eval(test) || b.eval(test),
        }
    }

    /// `a && b && …`: what plain `dependencies` mean.
    pub fn all_of(nodes: &[String]) -> Option<Expr> {
        nodes
            .iter()
            .map(|n| Expr::Ref {
                node: n.clone(),
                outcome: None,
            })
            .reduce(|a, b| Expr::And(Box::new(a), Box::new(b)))
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Ref {
                node,
                outcome: None,
            } => f.write_str(node),
            Expr::Ref {
                node,
                outcome: Some(o),
            } => {
                write!(f, "{node}.{}", <&'static str>::from(*o))
            }
            Expr::Not(e) => match **e {
                Expr::Ref { .. } | Expr::Not(_) => write!(f, "!{e}"),
                _ => write!(f, "!({e})"),
            },
            Expr::And(a, b) => {
                let side = |e: &Expr, f: &mut std::fmt::Formatter<'_>| match e {
                    Expr::Or(..) => write!(f, "({e})"),
                    _ => write!(f, "{e}"),
                };
                side(a, f)?;
                f.write_str(" && ")?;
                side(b, f)
            }
            Expr::Or(a, b) => write!(f, "{a} || {b}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Dot,
    And,
    Or,
    Not,
    Open,
    Close,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Name(n) => format!("{n:?}"),
            Token::Dot => "'.'".into(),
            Token::And => "'&&'".into(),
            Token::Or => "'||'".into(),
            Token::Not => "'!'".into(),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Token)>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let two = chars.get(i + 1).copied();
        let token = match c {
            ' ' | '\t' | '\n' | '\r' => {
                i += 1;
                continue;
            }
            '.' => Token::Dot,
            '(' => Token::Open,
            ')' => Token::Close,
            '!' => Token::Not,
            '&' if two == Some('&') => Token::And,
            '|' if two == Some('|') => Token::Or,
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-')
                {
                    i += 1;
                }
                out.push((start, Token::Name(chars[start..i].iter().collect())));
                continue;
            }
            other => {
                return Err(ExprError {
                    at: i,
                    message: format!(
                        "unexpected {other:?}; an expression is node names, '.', &&, ||, ! and parentheses"
                    ),
                });
            }
        };
        let width = if matches!(token, Token::And | Token::Or) {
            2
        } else {
            1
        };
        out.push((i, token));
        i += width;
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn here(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(at, _)| *at)
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.unary()?;
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        let at = self.here();
        match self.tokens.get(self.at).map(|(_, t)| t.clone()) {
            Some(Token::Not) => {
                self.at += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Token::Open) => {
                self.at += 1;
                let e = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(ExprError {
                        at: self.here(),
                        message: format!("expected ')' to close the '(' at character {at}"),
                    });
                }
                self.at += 1;
                Ok(e)
            }
            Some(Token::Name(node)) => {
                self.at += 1;
                if self.peek() != Some(&Token::Dot) {
                    return Ok(Expr::Ref {
                        node,
                        outcome: None,
                    });
                }
                self.at += 1;
                let at = self.here();
                match self.tokens.get(self.at).map(|(_, t)| t.clone()) {
                    Some(Token::Name(word)) => {
                        self.at += 1;
                        let outcome = word.parse::<Outcome>().map_err(|_| ExprError {
                            at,
                            message: format!(
                                "{node}.{word}: {word:?} is not an outcome; the outcomes are {}",
                                outcomes()
                            ),
                        })?;
                        Ok(Expr::Ref {
                            node,
                            outcome: Some(outcome),
                        })
                    }
                    other => Err(ExprError {
                        at,
                        message: format!(
                            "expected an outcome after '{node}.', found {}",
                            other.map_or("the end".into(), |t| t.describe())
                        ),
                    }),
                }
            }
            other => Err(ExprError {
                at,
                message: format!(
                    "expected a node name, '!' or '(', found {}",
                    other.map_or("the end".into(), |t| t.describe())
                ),
            }),
        }
    }
}

fn outcomes() -> String {
    <Outcome as strum::VariantArray>::VARIANTS
        .iter()
        .map(|o| <&'static str>::from(*o))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phases<'a>(fulfilled: &'a [(&'a str, Outcome)]) -> impl Fn(&str, Outcome) -> bool + 'a {
        move |n, o| fulfilled.iter().any(|(m, p)| *m == n && *p == o)
    }

    #[test]
    fn precedence_and_bare_names_follow_argo() {
        let e = Expr::parse("a && !b.Failed || c.Skipped").unwrap();
        assert_eq!(e.to_string(), "a && !b.Failed || c.Skipped");
        assert!(e.eval(&phases(&[
            ("a", Outcome::Succeeded),
            ("b", Outcome::Succeeded)
        ])));
        assert!(!e.eval(&phases(&[
            ("a", Outcome::Succeeded),
            ("b", Outcome::Failed)
        ])));
        assert!(e.eval(&phases(&[("b", Outcome::Failed), ("c", Outcome::Skipped)])));
        // A bare name is Succeeded or Skipped.
        let bare = Expr::parse("a").unwrap();
        assert!(bare.eval(&phases(&[("a", Outcome::Skipped)])));
        assert!(!bare.eval(&phases(&[("a", Outcome::Omitted)])));
        let grouped = Expr::parse("(a || b) && c").unwrap();
        assert_eq!(grouped.to_string(), "(a || b) && c");
        assert_eq!(
            grouped.nodes().into_iter().collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(Expr::parse("!(a && b)").unwrap().to_string(), "!(a && b)");
    }

    #[test]
    fn a_bad_expression_names_where_and_why() {
        let e = Expr::parse("a.Succeded").unwrap_err();
        assert_eq!(e.at, 2);
        assert!(e.message.contains("\"Succeded\" is not an outcome"), "{e}");
        assert!(e.message.contains("AnySucceeded"), "{e}");
        assert!(Expr::parse("").unwrap_err().message.contains("empty"));
        assert!(
            Expr::parse("a &&")
                .unwrap_err()
                .message
                .contains("found the end")
        );
        assert_eq!(Expr::parse("(a || b").unwrap_err().at, 7);
        assert!(
            Expr::parse("a b")
                .unwrap_err()
                .message
                .contains("expected && or ||")
        );
        assert!(
            Expr::parse("a & b")
                .unwrap_err()
                .message
                .contains("unexpected '&'")
        );
        assert!(
            Expr::parse("a.")
                .unwrap_err()
                .message
                .contains("expected an outcome")
        );
    }

    #[test]
    fn all_of_is_dependencies() {
        let e = Expr::all_of(&["a".into(), "b".into()]).unwrap();
        assert_eq!(e.to_string(), "a && b");
        assert_eq!(Expr::all_of(&[]), None);
    }
}
