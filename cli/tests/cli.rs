//! End-to-end tests of the `platewatch` binary: the demo, scanning generated frames as
//! images, a folder sequence and a video, eval's JSON contract, and clear errors (never a
//! panic) for missing files, corrupt images, truncated video and bad models.

use std::path::Path;
use std::process::{Command, Output};

use platewatch_cli::scene::{self, Rng};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_platewatch"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("platewatch runs")
}

/// A fresh directory for one test, removed when the returned guard drops.
fn tmpdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("platewatch-cli-{name}-"))
        .tempdir()
        .expect("temp dir")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, stderr: {err}");
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "must not panic: {err}");
}

/// Writes one synthetic vehicle pass as JPEG frames; returns the folder and the plate text.
fn write_pass(dir: &Path, seed: u64, frames: usize) -> String {
    let mut rng = Rng::new(seed);
    let pass = scene::vehicle_pass(&mut rng, frames, 30.0, 70.0);
    for (i, f) in pass.frames.iter().enumerate() {
        f.save(dir.join(format!("f{i:03}.jpg")))
            .expect("write frame");
    }
    pass.text
}

#[test]
fn demo_runs_and_reads_its_plates() {
    let o = run(&["demo", "--passes", "3"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("3 passes"), "{out}");
    let exact: usize = out.lines().filter(|l| l.contains(" exact ")).count();
    assert!(
        exact >= 2,
        "the demo should read most of its own plates:\n{out}"
    );
}

#[test]
fn scan_images_as_sequence_gives_one_read_with_json_and_crops() {
    let tmp = tmpdir("seq");
    let dir = tmp.path();
    let text = write_pass(dir, 11, 10);
    let crops = dir.join("crops");
    let o = run(&[
        "scan",
        dir.to_str().expect("utf8"),
        "--sequence",
        "30",
        "--json",
        "--save-crops",
        crops.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let summary = lines.last().expect("summary");
    assert_eq!(summary["frames"], 10);
    let reads: Vec<_> = lines.iter().filter(|v| v.get("text").is_some()).collect();
    assert_eq!(reads.len(), 1, "{out}");
    assert_eq!(reads[0]["text"], text);
    let crop = reads[0]["crop"].as_str().expect("crop path");
    assert!(image::open(crop).is_ok());
    // Independent images: one read per image.
    let o = run(&[
        "scan",
        dir.join("f009.jpg").to_str().expect("utf8"),
        dir.join("f008.jpg").to_str().expect("utf8"),
    ]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
}

#[test]
fn eval_prints_the_json_contract_for_scenes_and_crops() {
    let tmp = tmpdir("eval");
    let dir = tmp.path();
    let mut rng = Rng::new(5);
    let mut scenes = String::from("image,x,y,w,h,text\n");
    let mut crops = String::from("image,text,state\n");
    for i in 0..4 {
        let text = scene::random_plate(&mut rng);
        let plate = scene::render_plate(&text, &mut rng);
        let bg = scene::background(1280, 720, &mut rng);
        let p = scene::Placement {
            plate: &plate,
            cx: 300.0 + 150.0 * i as f32,
            cy: 400.0,
            height: 50.0,
            car_colour: [180, 40, 40],
        };
        let (img, boxes) = scene::compose(&bg, &[p]);
        img.save(dir.join(format!("s{i}.jpg"))).expect("save");
        let b = boxes[0];
        scenes.push_str(&format!(
            "s{i}.jpg,{},{},{},{},{}\n",
            b[0], b[1], b[2], b[3], text
        ));
        // The crop as a plate reader sees it: the plate with a margin of its surroundings.
        let (mx, my) = (b[2] * 0.12, b[3] * 0.2);
        let crop = image::imageops::crop_imm(
            &img,
            (b[0] - mx) as u32,
            (b[1] - my) as u32,
            (b[2] + 2.0 * mx) as u32,
            (b[3] + 2.0 * my) as u32,
        );
        crop.to_image()
            .save(dir.join(format!("c{i}.png")))
            .expect("save");
        crops.push_str(&format!("c{i}.png,{text},\n"));
    }
    scenes.push_str("empty.jpg,,,,,\n");
    scene::background(640, 360, &mut rng)
        .save(dir.join("empty.jpg"))
        .expect("save");
    std::fs::write(dir.join("scenes.csv"), scenes).expect("csv");
    std::fs::write(dir.join("crops.csv"), crops).expect("csv");
    let o = run(&[
        "eval",
        dir.join("scenes.csv").to_str().expect("utf8"),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value =
        serde_json::from_str(out.lines().last().expect("line")).expect("json");
    for k in [
        "images",
        "plates",
        "detection_recall",
        "detection_precision",
        "exact_rate",
        "char_accuracy",
        "state_rate",
        "ms_per_image",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    assert_eq!(v["images"], 5);
    assert_eq!(v["plates"], 4);
    assert!(v["state_rate"].is_null());
    assert!(
        v["detection_recall"].as_f64().expect("recall") >= 0.75,
        "{v}"
    );
    let rate = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k}: {v}"));
    assert!(rate("detection_recall_iou70") <= rate("detection_recall_iou50"));
    assert!(rate("detection_recall_iou50") <= rate("detection_recall"));
    assert!(rate("false_detections_per_image") >= 0.0);
    // A read that is exact alerts on its own entry, so the match rate is at least the exact rate.
    assert!(rate("match_rate") >= rate("exact_rate"), "{v}");
    // Misreads go to the file the user names, and plate text nowhere else.
    let mut wrong = std::fs::read_to_string(dir.join("scenes.csv")).expect("csv");
    for (i, l) in wrong.clone().lines().enumerate().skip(1).take(4) {
        let label = l.rsplit(',').next().expect("text");
        wrong = wrong.replace(l, &l.replace(label, &format!("QZ{i}QZ{i}")));
    }
    std::fs::write(dir.join("wrong.csv"), &wrong).expect("csv");
    let errors = dir.join("errors.csv");
    let o = run(&[
        "eval",
        dir.join("wrong.csv").to_str().expect("utf8"),
        "--errors",
        errors.to_str().expect("utf8"),
        "--verbose",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let written = std::fs::read_to_string(&errors).expect("errors file");
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("image,label,read,confidence,iou"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 4, "{written}");
    for i in 1..=4 {
        let label = format!("QZ{i}QZ{i}");
        assert!(rows.iter().any(|r| r.contains(&label)), "{written}");
        let shown = format!("{}{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
        assert!(
            !shown.contains(&label),
            "plate text on the terminal: {shown}"
        );
    }
    let o = run(&[
        "eval",
        dir.join("crops.csv").to_str().expect("utf8"),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .expect("line"),
    )
    .expect("json");
    assert!(v["detection_recall"].is_null());
    assert!(v["state_rate"].is_null(), "no state labels given: {v}");
    assert!(v["exact_rate"].as_f64().is_some(), "{v}");
    assert!(v["char_accuracy"].as_f64().expect("chars") >= 0.7, "{v}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let tmp = tmpdir("bad");
    let dir = tmp.path();
    assert_clean_failure(&run(&["scan", "/nonexistent/plate.jpg"]), "cannot open");
    let junk = dir.join("junk.jpg");
    std::fs::write(&junk, b"\xff\xd8\xff\xe0 this is not really a jpeg").expect("write");
    assert_clean_failure(
        &run(&["scan", junk.to_str().expect("utf8")]),
        "not a readable image",
    );
    // A real JPEG cut short decodes to grey without a decoder error: it is named truncated.
    let mut img = image::RgbImage::new(320, 240);
    for (x, y, p) in img.enumerate_pixels_mut() {
        *p = image::Rgb([(x % 251) as u8, (y % 241) as u8, 128]);
    }
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&img)
        .expect("encode");
    let cut = dir.join("cut.jpg");
    std::fs::write(&cut, &jpeg[..jpeg.len() / 2]).expect("write");
    assert_clean_failure(
        &run(&["scan", cut.to_str().expect("utf8")]),
        "truncated JPEG",
    );
    assert_clean_failure(&run(&["scan", "/dev/zero"]), "not a regular file");
    let model = dir.join("model.onnx");
    std::fs::write(&model, b"garbage").expect("write");
    assert_clean_failure(
        &run(&[
            "scan",
            junk.to_str().expect("utf8"),
            "--detector",
            model.to_str().expect("utf8"),
        ]),
        "model",
    );
    assert_clean_failure(
        &run(&[
            "scan",
            junk.to_str().expect("utf8"),
            "--reader",
            "/nonexistent.onnx",
        ]),
        "cannot read model",
    );
    assert_clean_failure(
        &run(&[
            "scan",
            junk.to_str().expect("utf8"),
            "--input-size",
            "100x7",
        ]),
        "multiples of 32",
    );
    assert_clean_failure(&run(&["eval", "/nonexistent/labels.csv"]), "cannot read");
    let csv = dir.join("bad.csv");
    std::fs::write(&csv, "foo,bar\n1,2\n").expect("write");
    assert_clean_failure(&run(&["eval", csv.to_str().expect("utf8")]), "image");
    assert_clean_failure(&run(&["scan"]), "nothing to scan");
}

#[cfg(feature = "video")]
#[test]
fn scans_video_and_rejects_truncated_video() {
    let tmp = tmpdir("video");
    let dir = tmp.path();
    let text = write_pass(dir, 23, 24);
    let video = dir.join("pass.mp4");
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-framerate", "24", "-i"])
        .arg(dir.join("f%03d.jpg"))
        .args(["-c:v", "mpeg4", "-q:v", "3", "-pix_fmt", "yuv420p"])
        .arg(&video)
        .status()
        .expect("ffmpeg (Debian package) is installed");
    assert!(status.success());
    let o = run(&["scan", video.to_str().expect("utf8"), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let reads: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .filter(|v: &serde_json::Value| v.get("text").is_some())
        .collect();
    assert_eq!(reads.len(), 1, "{out}");
    assert_eq!(reads[0]["text"], text);
    assert!(
        reads[0]["last_seen_ms"].as_u64().expect("ms") > 800,
        "video timestamps: {out}"
    );

    let bytes = std::fs::read(&video).expect("read");
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    assert_clean_failure(&run(&["scan", cut.to_str().expect("utf8")]), "truncated");
}
