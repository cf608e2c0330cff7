//! Points, axis-aligned boxes and plate quadrilaterals in upright frame pixels; IoU and NMS.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub fn new(x: f32, y: f32) -> Self {
        Point { x, y }
    }
}

/// Axis-aligned box: top-left corner, width and height.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl BBox {
    pub fn new(x: f32, y: f32, w: f32, h: f32) -> Self {
        BBox { x, y, w, h }
    }

    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    pub fn center(&self) -> Point {
        Point::new(self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    pub fn contains(&self, p: Point) -> bool {
        p.x >= self.x && p.x <= self.x + self.w && p.y >= self.y && p.y <= self.y + self.h
    }

    /// Area of the intersection with `o` (0 when disjoint).
    fn intersection(&self, o: &BBox) -> f32 {
        let ix = (self.x + self.w).min(o.x + o.w) - self.x.max(o.x);
        let iy = (self.y + self.h).min(o.y + o.h) - self.y.max(o.y);
        if ix <= 0.0 || iy <= 0.0 { 0.0 } else { ix * iy }
    }

    /// Intersection over union; 0 for disjoint or empty boxes.
    pub fn iou(&self, o: &BBox) -> f32 {
        let inter = self.intersection(o);
        let union = self.area() + o.area() - inter;
        if inter <= 0.0 || union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// Intersection over the smaller box's area: how much of the smaller box lies in the
    /// other (1 when one holds the other); 0 for disjoint or empty boxes.
    pub fn overlap(&self, o: &BBox) -> f32 {
        let smaller = self.area().min(o.area());
        if smaller <= 0.0 {
            0.0
        } else {
            self.intersection(o) / smaller
        }
    }

    /// Grown by `fx` of its width on each side and `fy` of its height top and bottom.
    pub fn expand(&self, fx: f32, fy: f32) -> BBox {
        BBox::new(
            self.x - self.w * fx,
            self.y - self.h * fy,
            self.w * (1.0 + 2.0 * fx),
            self.h * (1.0 + 2.0 * fy),
        )
    }
}

/// A plate outline: corners top-left, top-right, bottom-right, bottom-left.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Quad(pub [Point; 4]);

impl Quad {
    pub fn from_bbox(b: &BBox) -> Quad {
        Quad([
            Point::new(b.x, b.y),
            Point::new(b.x + b.w, b.y),
            Point::new(b.x + b.w, b.y + b.h),
            Point::new(b.x, b.y + b.h),
        ])
    }

    pub fn bbox(&self) -> BBox {
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for p in &self.0 {
            x0 = x0.min(p.x);
            y0 = y0.min(p.y);
            x1 = x1.max(p.x);
            y1 = y1.max(p.y);
        }
        BBox::new(x0, y0, x1 - x0, y1 - y0)
    }

    /// Point at (s, t) of the bilinear patch spanned by the corners (s along the top edge,
    /// t down the left edge); values outside 0..1 extrapolate.
    pub fn at(&self, s: f32, t: f32) -> Point {
        let [tl, tr, br, bl] = self.0;
        let top = Point::new(tl.x + (tr.x - tl.x) * s, tl.y + (tr.y - tl.y) * s);
        let bot = Point::new(bl.x + (br.x - bl.x) * s, bl.y + (br.y - bl.y) * s);
        Point::new(top.x + (bot.x - top.x) * t, top.y + (bot.y - top.y) * t)
    }

    /// The quad grown by `fx` of its width left and right and `fy` of its height top and bottom.
    pub fn expand(&self, fx: f32, fy: f32) -> Quad {
        Quad([
            self.at(-fx, -fy),
            self.at(1.0 + fx, -fy),
            self.at(1.0 + fx, 1.0 + fy),
            self.at(-fx, 1.0 + fy),
        ])
    }

    /// Mean length of the top and bottom edges.
    pub fn width(&self) -> f32 {
        let d = |a: Point, b: Point| ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt();
        (d(self.0[0], self.0[1]) + d(self.0[3], self.0[2])) / 2.0
    }

    /// Mean length of the left and right edges.
    pub fn height(&self) -> f32 {
        let d = |a: Point, b: Point| ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt();
        (d(self.0[0], self.0[3]) + d(self.0[1], self.0[2])) / 2.0
    }

    pub fn scale(&self, s: f32) -> Quad {
        Quad(self.0.map(|p| Point::new(p.x * s, p.y * s)))
    }
}

/// Greedy non-maximum suppression: indices of the boxes kept, best score first.
pub fn nms(boxes: &[BBox], scores: &[f32], iou_threshold: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut keep: Vec<usize> = Vec::new();
    for i in order {
        if keep
            .iter()
            .all(|&k| boxes[k].iou(&boxes[i]) <= iou_threshold)
        {
            keep.push(i);
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_known_boxes() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BBox::new(20.0, 0.0, 5.0, 5.0)), 0.0);
        let b = BBox::new(5.0, 0.0, 10.0, 10.0);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        // A thin band over the top of `a`: small IoU, but a quarter of the band is inside `a`.
        let band = BBox::new(0.0, -6.0, 10.0, 8.0);
        assert!(a.iou(&band) < 0.15);
        assert!((a.overlap(&band) - 0.25).abs() < 1e-6);
        assert_eq!(a.overlap(&BBox::new(2.0, 2.0, 3.0, 3.0)), 1.0);
        assert_eq!(a.overlap(&BBox::new(20.0, 0.0, 5.0, 5.0)), 0.0);
    }

    #[test]
    fn nms_suppresses_overlaps_only() {
        let boxes = [
            BBox::new(0.0, 0.0, 10.0, 10.0),
            BBox::new(1.0, 1.0, 10.0, 10.0),
            BBox::new(50.0, 50.0, 10.0, 10.0),
        ];
        assert_eq!(nms(&boxes, &[0.5, 0.9, 0.7], 0.4), vec![1, 2]);
    }

    #[test]
    fn quad_expand_and_bbox() {
        let q = Quad::from_bbox(&BBox::new(10.0, 20.0, 100.0, 50.0));
        let e = q.expand(0.1, 0.2).bbox();
        assert_eq!(e, BBox::new(0.0, 10.0, 120.0, 70.0));
        assert_eq!(q.width(), 100.0);
        assert_eq!(q.height(), 50.0);
    }
}
