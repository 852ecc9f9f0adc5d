//! Notice texts: pure functions from a few server-known facts to a subject, a plain-text part
//! and an HTML part.
//!
//! What may appear: the firm's name (a setting), the link to the server, a count, an inviter's
//! name and address, an invite link and its expiry. What must never appear, and cannot, since
//! these functions are never given it: a message's subject, body, file names, matter or any
//! other text a sender wrote. No IO, no clock.

use crate::wire::format_utc;

/// A composed email body, ready for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// The fixed subject of every message notice.
pub fn message_subject(firm: &str) -> String {
    format!("You have a secure message from {firm}")
}

/// "You have a secure message": `count` items are waiting at `link`.
pub fn message_notice(firm: &str, link: &str, count: u32) -> Composed {
    let waiting = if count <= 1 {
        "A new secure item is waiting for you.".to_owned()
    } else {
        format!("{count} new secure items are waiting for you.")
    };
    let text = format!(
        "{firm} has sent you something through its secure exchange.\n\n\
{waiting}\n\nOpen it here:\n{link}\n\n\
For your protection this email does not say what was sent. Sign in to read it.\n\
If you did not expect this email, contact {firm} by a channel you already know.\n"
    );
    let html = page(&format!(
        "<p>{firm} has sent you something through its secure exchange.</p>\n\
<p><strong>{waiting}</strong></p>\n<p><a href=\"{link}\">Open it here</a><br>{link}</p>\n\
<p>For your protection this email does not say what was sent. Sign in to read it.<br>\n\
If you did not expect this email, contact {firm} by a channel you already know.</p>",
        firm = escape(firm),
        waiting = escape(&waiting),
        link = escape(link),
    ));
    Composed {
        subject: message_subject(firm),
        text,
        html,
    }
}

/// An invitation to join: who invited, which firm, the link (with its secret) and its expiry.
pub fn invite_notice(
    firm: &str,
    inviter_name: &str,
    inviter_email: &str,
    url: &str,
    expires_at: i64,
) -> Composed {
    let expires = format_utc(expires_at);
    let subject = format!("{firm} invites you to its secure exchange");
    let text = format!(
        "{inviter_name} <{inviter_email}> of {firm} invites you to exchange documents and \
messages securely.\n\nTo accept, follow the instructions at this link (keep it private: it \
works once and only for you):\n{url}\n\nThe invitation expires on {expires}.\n\
If you did not expect this email, contact {firm} by a channel you already know.\n"
    );
    let html = page(&format!(
        "<p>{name} &lt;{email}&gt; of {firm} invites you to exchange documents and messages \
securely.</p>\n<p>To accept, follow the instructions at this link (keep it private: it works \
once and only for you):<br>\n<a href=\"{url}\">{url}</a></p>\n<p>The invitation expires on \
{expires}.<br>\nIf you did not expect this email, contact {firm} by a channel you already \
know.</p>",
        name = escape(inviter_name),
        email = escape(inviter_email),
        firm = escape(firm),
        url = escape(url),
        expires = escape(&expires),
    ));
    Composed {
        subject,
        text,
        html,
    }
}

/// A reminder: something at `link` needs the recipient's attention (what, the email does not
/// say; `topic` is a fixed server code that picks the wording).
pub fn reminder_notice(firm: &str, link: &str, topic: &str) -> Composed {
    let line = match topic {
        "reply_target" => "A client's message has been waiting longer than your reply target.",
        "signature_deadline" => "A signature requested from you is due soon.",
        "signature_answered" => "A signature request you made has been answered.",
        _ => "Something in your secure exchange needs your attention.",
    };
    let text = format!("Reminder from {firm}.\n\n{line}\n\nOpen it here:\n{link}\n");
    let html = page(&format!(
        "<p>Reminder from {firm}.</p>\n<p><strong>{line}</strong></p>\n\
<p><a href=\"{link}\">Open it here</a><br>{link}</p>",
        firm = escape(firm),
        line = escape(line),
        link = escape(link),
    ));
    Composed {
        subject: format!("Reminder from {firm}"),
        text,
        html,
    }
}

fn page(body: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"></head>\n<body>\n{body}\n</body></html>\n"
    )
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_notice_says_only_what_it_may() {
        let c = message_notice("Smith & Co", "https://portal.example", 1);
        assert_eq!(c.subject, "You have a secure message from Smith & Co");
        assert!(c.text.contains("https://portal.example"));
        assert!(c.html.contains("Smith &amp; Co"));
        let c = message_notice("Smith & Co", "https://portal.example", 5);
        assert!(c.text.contains("5 new secure items"), "{}", c.text);
    }

    #[test]
    fn signature_notices_have_fixed_text() {
        let due = reminder_notice("Smith & Co", "https://portal.example", "signature_deadline");
        assert!(
            due.text
                .contains("A signature requested from you is due soon.")
        );
        let answered =
            reminder_notice("Smith & Co", "https://portal.example", "signature_answered");
        assert!(
            answered
                .text
                .contains("A signature request you made has been answered.")
        );
        assert_eq!(answered.subject, "Reminder from Smith & Co");
    }
}
