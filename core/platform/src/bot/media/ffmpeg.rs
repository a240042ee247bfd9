//! The arguments `ffmpeg` and `ffprobe` are given, built from typed fields
//! only, and the readings of what they print: `-progress` blocks, the
//! probe's JSON, the SSIM filter's summary. Pure: no process here.

use std::ffi::OsString;
use std::path::Path;

use serde::Serialize;

use crate::ticket::VideoCodec;

/// The arguments every run starts with: quiet, never a prompt, progress as
/// `key=value` blocks on stdout.
fn base() -> Vec<OsString> {
    [
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "error",
        "-progress",
        "pipe:1",
        "-y",
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}

/// The containers an input may be read as: plain media files. A playlist
/// or list format (HLS, concat, …) would open other files by name, so it
/// is never guessed from what a file holds.
const FORMATS: &str = "mov,matroska,webm,avi,mpegts,mpeg,flv,ogg,ivf";

/// What goes before each `-i` of an artifact: only files, only `formats`.
fn guarded(a: &mut Vec<OsString>, formats: &str) {
    a.extend(["-protocol_whitelist", "file", "-format_whitelist"].map(OsString::from));
    a.push(formats.into());
}

fn ms(v: u64) -> String {
    format!("{}.{:03}", v / 1000, v % 1000)
}

/// One segment: `[start_ms, start_ms + duration_ms)` of `input`, encoded
/// with `codec` into Matroska at `out` (which joins without encoding again).
pub fn transcode_args(
    input: &Path,
    (start_ms, duration_ms): (u64, u64),
    codec: VideoCodec,
    height: Option<u32>,
    crf: Option<u8>,
    out: &Path,
) -> Vec<OsString> {
    let mut a = base();
    // `-ss` before `-i` seeks the input; with an encode it is exact.
    a.extend([
        "-ss".into(),
        ms(start_ms).into(),
        "-t".into(),
        ms(duration_ms).into(),
    ]);
    guarded(&mut a, FORMATS);
    a.extend([
        "-i".into(),
        input.as_os_str().to_owned(),
        "-an".into(),
        "-sn".into(),
    ]);
    if let Some(h) = height {
        a.extend(["-vf".into(), format!("scale=-2:{h}").into()]);
    }
    let (encoder, extra): (&str, &[&str]) = match codec {
        VideoCodec::H264 => ("libx264", &["-preset", "veryfast", "-pix_fmt", "yuv420p"]),
        VideoCodec::Vp9 => (
            "libvpx-vp9",
            &["-deadline", "realtime", "-cpu-used", "8", "-b:v", "0"],
        ),
        VideoCodec::Mpeg4 => ("mpeg4", &["-q:v", "5"]),
    };
    a.extend(["-c:v".into(), encoder.into()]);
    a.extend(extra.iter().map(OsString::from));
    if let Some(c) = crf {
        a.extend(["-crf".into(), c.to_string().into()]);
    }
    a.extend(["-f".into(), "matroska".into(), out.as_os_str().to_owned()]);
    a
}

/// The concat demuxer's list of `files`, each quoted as it requires.
pub fn concat_list(files: &[&Path]) -> String {
    let mut list = String::from("ffconcat version 1.0\n");
    for f in files {
        let quoted = f.to_string_lossy().replace('\'', r"'\''");
        list.push_str(&format!("file '{quoted}'\n"));
    }
    list
}

/// Joins what `list` names without encoding again, into MP4 at `out`.
pub fn concat_args(list: &Path, out: &Path) -> Vec<OsString> {
    let mut a = base();
    // Our own list (absolute paths, so not `safe`); what it names is read
    // under the same whitelist.
    guarded(&mut a, &format!("concat,{FORMATS}"));
    a.extend(["-f", "concat", "-safe", "0", "-i"].map(OsString::from));
    a.push(list.as_os_str().to_owned());
    a.extend(["-c", "copy", "-movflags", "+faststart", "-f", "mp4"].map(OsString::from));
    a.push(out.as_os_str().to_owned());
    a
}

/// Compares `input` with `reference` (scaled to the input's size) frame by
/// frame; the SSIM summary goes to stderr at `info`.
pub fn ssim_args(input: &Path, reference: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "info",
        "-progress",
        "pipe:1",
    ]
    .map(OsString::from)
    .to_vec();
    guarded(&mut a, FORMATS);
    a.extend(["-i".into(), input.as_os_str().to_owned()]);
    guarded(&mut a, FORMATS);
    a.extend(["-i".into(), reference.as_os_str().to_owned()]);
    a.extend(
        [
            "-lavfi",
            "[1:v][0:v]scale2ref[ref][main];[main][ref]ssim",
            "-f",
            "null",
            "-",
        ]
        .map(OsString::from),
    );
    a
}

/// `ffprobe` of the first video stream and the container, as JSON.
pub fn probe_args(input: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=codec_name,width,height,r_frame_rate,duration:format=duration",
        "-of",
        "json",
    ]
    .map(OsString::from)
    .to_vec();
    guarded(&mut a, FORMATS);
    a.push(input.as_os_str().to_owned());
    a
}

/// How far a run is, 0..=100, from one line of its `-progress` output, or
/// `None` if the line does not tell.
pub fn progress(line: &str, total_ms: u64) -> Option<u8> {
    if line.trim() == "progress=end" {
        return Some(100);
    }
    let us: u64 = line.strip_prefix("out_time_us=")?.trim().parse().ok()?;
    if total_ms == 0 {
        return None;
    }
    Some(
        (us / 1000)
            .saturating_mul(100)
            .checked_div(total_ms)?
            .min(99) as u8,
    )
}

/// What `ffprobe` read of a video.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    pub duration_ms: u64,
    pub width: u32,
    pub height: u32,
    pub codec: String,
    /// Frames per second, as a fraction's value.
    pub frame_rate: f64,
}

/// Reads [`probe_args`]' JSON; `Err` says what was missing.
pub fn parse_probe(json: &[u8]) -> Result<Probe, String> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("ffprobe printed no JSON: {e}"))?;
    let stream = v
        .get("streams")
        .and_then(|s| s.get(0))
        .ok_or("the input has no video stream")?;
    let seconds = |x: Option<&serde_json::Value>| {
        x.and_then(serde_json::Value::as_str)
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
    };
    let duration = seconds(v.get("format").and_then(|f| f.get("duration")))
        .or_else(|| seconds(stream.get("duration")))
        .ok_or("the input's duration is unknown")?;
    let dim = |k: &str| {
        stream
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("the video stream has no {k}"))
    };
    let frame_rate = stream
        .get("r_frame_rate")
        .and_then(serde_json::Value::as_str)
        .and_then(|r| {
            let (n, d) = r.split_once('/')?;
            let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
            (d > 0.0).then(|| n / d)
        })
        .unwrap_or(0.0);
    Ok(Probe {
        duration_ms: (duration * 1000.0).round() as u64,
        width: dim("width")?,
        height: dim("height")?,
        codec: stream
            .get("codec_name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unknown")
            .to_owned(),
        frame_rate: (frame_rate * 1000.0).round() / 1000.0,
    })
}

/// One planned segment of a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub index: u32,
    pub start_ms: u64,
    pub duration_ms: u64,
}

/// `duration_ms` cut into segments of `segment_seconds` (the last one
/// shorter); one segment if none is given. Never more than `max`: the
/// segments are widened, evenly, so that `max` cover it.
pub fn segments(duration_ms: u64, segment_seconds: Option<u32>, max: usize) -> Vec<Segment> {
    let asked = segment_seconds.map_or(duration_ms, |s| u64::from(s) * 1000);
    let step = asked.max(duration_ms.div_ceil(max.max(1) as u64)).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < duration_ms {
        let duration = step.min(duration_ms - start);
        out.push(Segment {
            index: out.len() as u32,
            start_ms: start,
            duration_ms: duration,
        });
        start += duration;
    }
    out
}

/// The `All:` figure of the SSIM filter's summary line in `stderr`.
pub fn parse_ssim(stderr: &str) -> Option<f64> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("SSIM ") && l.contains("All:"))?;
    let rest = &line[line.find("All:")? + 4..];
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_read_from_out_time_and_end() {
        assert_eq!(progress("out_time_us=1000000", 2000), Some(50));
        assert_eq!(progress("out_time_us=5000000", 2000), Some(99));
        assert_eq!(progress("progress=end", 2000), Some(100));
        assert_eq!(progress("out_time_us=N/A", 2000), None);
        assert_eq!(progress("frame=12", 2000), None);
    }

    #[test]
    fn segments_cover_the_whole_duration_once() {
        let s = segments(5_040, Some(2), 100);
        assert_eq!(s.len(), 3);
        assert_eq!(s.iter().map(|s| s.duration_ms).sum::<u64>(), 5_040);
        assert_eq!((s[2].start_ms, s[2].duration_ms), (4_000, 1_040));
        assert_eq!(segments(5_000, None, 100).len(), 1);
        // Capped: the segments widen evenly.
        let s = segments(10_000, Some(1), 3);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].duration_ms, s[2].duration_ms), (3_334, 3_332));
        assert_eq!(s.iter().map(|s| s.duration_ms).sum::<u64>(), 10_000);
    }

    #[test]
    fn probe_and_ssim_are_read_from_what_the_tools_print() {
        let json = br#"{"streams":[{"codec_name":"h264","width":320,"height":240,"r_frame_rate":"25/1"}],"format":{"duration":"6.000000"}}"#;
        let p = parse_probe(json).unwrap();
        assert_eq!(
            (p.duration_ms, p.width, p.height, p.frame_rate),
            (6000, 320, 240, 25.0)
        );
        assert!(
            parse_probe(br#"{"streams":[]}"#)
                .unwrap_err()
                .contains("no video stream")
        );
        let err = "[Parsed_ssim_1 @ 0x5] SSIM Y:0.990 (20.1) U:0.99 V:0.99 All:0.987654 (19.08)\n";
        assert_eq!(parse_ssim(err), Some(0.987654));
        assert_eq!(parse_ssim("nothing"), None);
    }

    /// A playlist ingested as an artifact is not read as one: every input
    /// is opened as a file of a plain container, or refused.
    #[test]
    fn every_input_is_read_as_a_plain_media_file() {
        let p = Path::new("/m/a");
        for args in [
            probe_args(p),
            transcode_args(p, (0, 1000), VideoCodec::H264, None, None, p),
            ssim_args(p, p),
            concat_args(p, p),
        ] {
            let args: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let inputs = args.iter().filter(|a| *a == "-i").count();
            let guards = args
                .windows(2)
                .filter(|w| w[0] == "-format_whitelist")
                .count();
            assert_eq!(guards, inputs.max(1), "{args:?}");
            assert!(
                args.windows(2)
                    .all(|w| w[0] != "-format_whitelist" || !w[1].contains("hls"))
            );
        }
    }

    #[test]
    fn a_path_with_a_quote_is_quoted_for_the_concat_demuxer() {
        let list = concat_list(&[Path::new("/m/it's/a")]);
        assert!(list.ends_with("file '/m/it'\\''s/a'\n"), "{list}");
    }
}
