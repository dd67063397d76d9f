//! The responder page: `/r/<token>` on the admin API's HTTP server. Mobile-first HTML with its
//! CSS and script embedded (no external asset); forms post Accept and Close. Opening the page is
//! the member's receipt, Accept their accept, Close (outcome, note) the close. Every request is
//! rate-limited per source address, the token verified (`link`), and the alarm read through the
//! receiver's centre `Scope` (invariant 7): a link never shows another tenant's alarm, nor an
//! alarm its receiver was not offered.
use axum::extract::{ConnectInfo, Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vaka_centre::scope::Scope;
use vaka_core::alarm::{AlarmInput, AlarmState};
use vaka_core::directory::MemberRecord;
use vaka_core::{Alarm, AlarmKind, CentreId};

use crate::link::{Link, LinkError};
use crate::payload;
use crate::session::Ctx;
use crate::text;

const CSS: &[u8] = include_bytes!("assets/responder.css");
const JS: &[u8] = include_bytes!("assets/responder.js");
/// Sources remembered by the rate limiter before it forgets the oldest window.
const LIMITER_MAX: usize = 10_000;

pub(crate) struct PageState {
    pub ctx: Arc<Ctx>,
    pub key: Vec<u8>,
    limiter: Mutex<HashMap<Option<IpAddr>, (Instant, u32)>>,
}

impl PageState {
    pub(crate) fn new(ctx: Arc<Ctx>, key: Vec<u8>) -> PageState {
        PageState {
            ctx,
            key,
            limiter: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `source` may make another request this minute.
    fn allow(&self, source: Option<IpAddr>) -> bool {
        let per_min = self.ctx.cfg.link_opens_per_min;
        let mut m = self.limiter.lock().expect("limiter lock");
        let now = Instant::now();
        if m.len() >= LIMITER_MAX {
            m.retain(|_, (at, _)| now.duration_since(*at) < Duration::from_secs(60));
        }
        let e = m.entry(source).or_insert((now, 0));
        if now.duration_since(e.0) >= Duration::from_secs(60) {
            *e = (now, 0);
        }
        e.1 += 1;
        e.1 <= per_min
    }
}

pub(crate) fn router(state: Arc<PageState>) -> Router {
    Router::new()
        .route("/r/assets/responder.css", get(css))
        .route("/r/assets/responder.js", get(js))
        .route("/r/{token}", get(open))
        .route("/r/{token}/accept", post(accept))
        .route("/r/{token}/close", post(close))
        .with_state(state)
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

/// The peer's address, when the server knows it (`ConnectInfo`).
pub(crate) struct Source(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// What a link opens: its alarm (as the receiver's scope reads it), the receiver and the member.
struct Opened {
    alarm: Alarm,
    centre: CentreId,
    member: MemberRecord,
}

/// Why a link opens nothing: the status and what the person reads.
type Refused = (StatusCode, &'static str);

fn refusal(status: StatusCode, why: &str) -> Response {
    metrics::counter!("vaka_responder_links_refused_total", "status" => status.as_u16().to_string())
        .increment(1);
    let body = format!(
        "<!doctype html><html lang=sv><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <link rel=stylesheet href=\"/r/assets/responder.css\"><title>Vaka</title>\
         <main><h1>Länken fungerar inte</h1><p class=error>{}</p></main></html>",
        esc(why)
    );
    (status, Html(body)).into_response()
}

impl PageState {
    fn resolve(&self, token: &str, source: Option<IpAddr>) -> Result<Opened, Refused> {
        if !self.allow(source) {
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                "För många försök. Vänta en minut.",
            ));
        }
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let link = Link::verify(token, &self.key, now_s).map_err(|e| match e {
            LinkError::Expired => (StatusCode::GONE, "Länken har gått ut."),
            LinkError::Malformed | LinkError::Forged => {
                (StatusCode::FORBIDDEN, "Länken är inte giltig.")
            }
        })?;
        let centre = CentreId::new(&link.receiver);
        let member = {
            let dir = self.ctx.dir.load();
            dir.records
                .centres
                .get(&link.receiver)
                .and_then(|c| c.receiver.as_ref())
                .and_then(|r| r.members().get(usize::from(link.member)).cloned())
        }
        .ok_or((StatusCode::FORBIDDEN, "Länken är inte giltig längre."))?;
        let not_found = || (StatusCode::NOT_FOUND, "Larmet finns inte.");
        let scope = Scope::new(self.ctx.dir.clone(), centre.clone()).map_err(|_| not_found())?;
        let alarm = scope
            .load_for_action(&self.ctx.store, vaka_core::AlarmId(link.alarm))
            .map_err(|_| not_found())?;
        Ok(Opened {
            alarm,
            centre,
            member,
        })
    }

    async fn input(&self, o: &Opened, input: AlarmInput) -> Result<(), String> {
        self.ctx
            .router
            .centre_input(&o.alarm.device, o.alarm.id, input)
            .await
            .map_err(|e| e.to_string())
    }

    fn reload(&self, o: &mut Opened) {
        if let Ok(Some(a)) = self.ctx.store.alarm(o.alarm.id) {
            o.alarm = a;
        }
    }
}

async fn open(
    State(s): State<Arc<PageState>>,
    Source(source): Source,
    Path(token): Path<String>,
) -> Response {
    let mut o = match s.resolve(&token, source) {
        Ok(o) => o,
        Err((status, why)) => return refusal(status, why),
    };
    // Opening the link is this person's receipt of an alarm offered to their receiver.
    let offered = matches!(&o.alarm.state, AlarmState::Offered { centre } if *centre == o.centre);
    if offered {
        let input = AlarmInput::ReceiptBy {
            centre: o.centre.clone(),
            person: o.member.name.clone(),
        };
        if let Err(e) = s.input(&o, input).await {
            tracing::warn!(alarm = %o.alarm.id, error = %e, "responder receipt not applied");
        }
        s.reload(&mut o);
    }
    render(&s, &o, &token, None).await
}

async fn accept(
    State(s): State<Arc<PageState>>,
    Source(source): Source,
    Path(token): Path<String>,
) -> Response {
    let mut o = match s.resolve(&token, source) {
        Ok(o) => o,
        Err((status, why)) => return refusal(status, why),
    };
    let input = AlarmInput::Accept {
        centre: o.centre.clone(),
        operator: o.member.name.clone(),
    };
    match s.input(&o, input).await {
        Ok(()) => Redirect::to(&format!("/r/{token}")).into_response(),
        Err(e) => {
            s.reload(&mut o);
            render(
                &s,
                &o,
                &token,
                Some(&format!("Kunde inte ta emot larmet: {e}")),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct CloseForm {
    outcome: String,
    #[serde(default)]
    note: String,
}

async fn close(
    State(s): State<Arc<PageState>>,
    Source(source): Source,
    Path(token): Path<String>,
    Form(f): Form<CloseForm>,
) -> Response {
    let mut o = match s.resolve(&token, source) {
        Ok(o) => o,
        Err((status, why)) => return refusal(status, why),
    };
    let outcome = f.outcome.trim();
    let note = f.note.trim();
    let bad = outcome.is_empty()
        || outcome.chars().count() > 64
        || note.chars().count() > 2000
        || outcome
            .chars()
            .chain(note.chars())
            .any(|c| c.is_control() && c != '\n');
    if bad {
        return render(&s, &o, &token, Some("Ange ett utfall (högst 64 tecken).")).await;
    }
    let outcome = match note.is_empty() {
        true => outcome.to_owned(),
        false => format!("{outcome}: {note}"),
    };
    let input = AlarmInput::Close {
        centre: o.centre.clone(),
        outcome,
    };
    match s.input(&o, input).await {
        Ok(()) => Redirect::to(&format!("/r/{token}")).into_response(),
        Err(e) => {
            s.reload(&mut o);
            render(&s, &o, &token, Some(&format!("Kunde inte avsluta: {e}"))).await
        }
    }
}

/// "Low" if the device has an open battery alarm; else what it last said, if anything.
fn battery(s: &PageState, o: &Opened) -> String {
    let open = s
        .ctx
        .store
        .open_alarms_of(&o.alarm.device)
        .unwrap_or_default();
    let low = open.iter().any(|a| {
        a.kind == AlarmKind::Technical
            && (a.code.to_lowercase().contains("batt")
                || a.text
                    .as_deref()
                    .is_some_and(|t| t.to_lowercase().contains("batt")))
    });
    match low {
        true => "Låg (larm om lågt batteri)".into(),
        false => "Inget larm om lågt batteri".into(),
    }
}

async fn render(s: &PageState, o: &Opened, token: &str, error: Option<&str>) -> Response {
    let a = &o.alarm;
    let fix = s.ctx.store.opening_fix(a.id).ok().flatten();
    let json = payload::alarm(a, &s.ctx.dir.load(), fix.as_ref());
    // Last heard: the supervision record, else the latest position received (a tracker that is
    // not supervised is still heard through its fixes).
    let heard = [
        s.ctx.store.last_heard(&a.device).ok().flatten(),
        s.ctx
            .store
            .latest_position(&a.device)
            .ok()
            .flatten()
            .map(|p| p.received_ms),
    ]
    .into_iter()
    .flatten()
    .max();
    let mine = a.holder() == Some(&o.centre);
    let mut h = String::with_capacity(4096);
    h.push_str(
        "<!doctype html><html lang=sv><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <meta name=referrer content=no-referrer>\
         <link rel=stylesheet href=\"/r/assets/responder.css\"><title>Larm</title></head><body><main>",
    );
    let state = a.state.name();
    h.push_str(&format!(
        "<h1 id=what>{}</h1><span class=\"state {state}\" id=state>{}</span>",
        esc(&text::what(&json)),
        esc(state_text(&a.state))
    ));
    if let Some(e) = error {
        h.push_str(&format!("<p class=error>{}</p>", esc(e)));
    }
    h.push_str("<dl>");
    h.push_str(&format!(
        "<dt>Vem</dt><dd id=who>{} ({})</dd>",
        esc(&json.device),
        esc(&json.tenant)
    ));
    h.push_str(&format!(
        "<dt>När</dt><dd><time data-ms={} datetime=\"{}\">{}</time></dd>",
        a.created_ms,
        a.created_ms,
        esc(&text::clock(a.created_ms))
    ));
    match &json.position {
        Some(p) => {
            let acc = p
                .accuracy_m
                .map(|m| format!(" ±{m:.0} m"))
                .unwrap_or_default();
            h.push_str(&format!(
                "<dt>Position</dt><dd id=position>{:.5}, {:.5}{acc}<br>\
                 <a id=map href=\"https://www.openstreetmap.org/?mlat={:.6}&amp;mlon={:.6}#map=17/{:.6}/{:.6}\" \
                 rel=\"noopener noreferrer\">Visa på karta</a></dd>",
                p.lat, p.lon, p.lat, p.lon, p.lat, p.lon
            ));
        }
        None => h.push_str("<dt>Position</dt><dd id=position>Okänd</dd>"),
    }
    h.push_str(&format!(
        "<dt>Batteri</dt><dd id=battery>{}</dd>",
        esc(&battery(s, o))
    ));
    match heard {
        Some(ms) => h.push_str(&format!(
            "<dt>Senast hörd</dt><dd id=heard><time data-ms={ms}>{}</time></dd>",
            esc(&text::clock(ms))
        )),
        None => h.push_str("<dt>Senast hörd</dt><dd id=heard>Okänt</dd>"),
    }
    if let AlarmState::Accepted { operator, .. } = &a.state {
        h.push_str(&format!(
            "<dt>Tagen av</dt><dd id=accepted-by>{}</dd>",
            esc(operator)
        ));
    }
    h.push_str(&format!("<dt>Du</dt><dd>{}</dd></dl>", esc(&o.member.name)));
    let t = esc(token);
    match (&a.state, mine) {
        (AlarmState::Offered { .. } | AlarmState::Receipted { .. }, true)
        | (AlarmState::Unhandled, _) => h.push_str(&format!(
            "<form method=post action=\"/r/{t}/accept\"><button id=accept>Jag tar larmet</button></form>"
        )),
        (AlarmState::Accepted { .. }, true) => h.push_str(&format!(
            "<form method=post action=\"/r/{t}/close\">\
             <label>Utfall<select name=outcome id=outcome>\
             <option value=found>Personen hittad, allt väl</option>\
             <option value=helped>Personen fick hjälp</option>\
             <option value=false-alarm>Falsklarm</option>\
             <option value=other>Annat</option></select></label>\
             <label>Anteckning<textarea name=note id=note rows=3 maxlength=2000></textarea></label>\
             <button id=close>Avsluta larmet</button></form>"
        )),
        (AlarmState::Closed { outcome, .. }, _) => h.push_str(&format!(
            "<p class=note id=outcome-text>Avslutat: {}</p>",
            esc(outcome)
        )),
        _ => h.push_str(
            "<p class=note>Larmet hanteras av någon annan nu. Du behöver inte göra något.</p>",
        ),
    }
    h.push_str("</main><script src=\"/r/assets/responder.js\"></script></body></html>");
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; script-src 'self'; form-action 'self'; img-src 'self'",
            ),
        ],
        Html(h),
    )
        .into_response()
}

fn state_text(s: &AlarmState) -> &'static str {
    match s {
        AlarmState::Pending => "Väntar",
        AlarmState::Offered { .. } => "Nytt",
        AlarmState::Receipted { .. } => "Sett",
        AlarmState::Accepted { .. } => "Taget",
        AlarmState::Closed { .. } => "Avslutat",
        AlarmState::Cancelled => "Återkallat av enheten",
        AlarmState::Unhandled => "Ingen har tagit larmet",
        AlarmState::Expired => "Utgånget",
    }
}

/// HTML-escapes text for element content and quoted attributes.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}
