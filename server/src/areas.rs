//! Query areas: polygons sent as rings of `[lat, lon]` pairs, validated into `geo` polygons with
//! their bounding boxes (the index prefilter), the exact point-in-polygon test, the geodesic
//! area, and the flags for very large areas and configured sensitive locations.
//!
//! Polygons are taken in plain lat/lon degrees: one that crosses the antimeridian is read the
//! long way round (split it in two instead).

use geo::{
    Area as _, ChamberlainDuquetteArea, Coord, Distance, Euclidean, Intersects, LineString, Point,
    Polygon,
};
use serde::{Deserialize, Serialize};

/// A polygon as sent: rings of `[lat, lon]` pairs; the first ring is the boundary, any further
/// rings are holes. A ring may repeat its first point at the end or not.
pub type RingsIn = Vec<Vec<[f64; 2]>>;

/// Mean Earth radius in metres (the one `geo` uses for its spherical formulas).
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// An axis-aligned box in degrees, bounds included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub min_lat: f64,
    pub max_lat: f64,
    pub min_lon: f64,
    pub max_lon: f64,
}

impl BBox {
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        (self.min_lat..=self.max_lat).contains(&lat) && (self.min_lon..=self.max_lon).contains(&lon)
    }
}

/// A validated query polygon.
#[derive(Debug, Clone)]
pub struct Area {
    /// x = longitude, y = latitude.
    pub polygon: Polygon<f64>,
    pub bbox: BBox,
    /// Area on the sphere, km².
    pub area_km2: f64,
}

impl Area {
    /// Whether the point lies inside the polygon or on its boundary (holes excluded).
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        self.bbox.contains(lat, lon) && self.polygon.intersects(&Point::new(lon, lat))
    }
}

/// How many polygons and vertices one query may carry.
#[derive(Debug, Clone, Copy)]
pub struct AreaLimits {
    pub max_polygons: usize,
    pub max_vertices: usize,
}

fn coord(field: &str, p: [f64; 2]) -> Result<Coord<f64>, String> {
    let [lat, lon] = p;
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        return Err(format!("{field}: latitudes must be between -90 and 90"));
    }
    if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
        return Err(format!("{field}: longitudes must be between -180 and 180"));
    }
    Ok(Coord { x: lon, y: lat })
}

fn ring(field: &str, points: &[[f64; 2]]) -> Result<LineString<f64>, String> {
    let mut coords = points
        .iter()
        .map(|p| coord(field, *p))
        .collect::<Result<Vec<_>, _>>()?;
    coords.dedup();
    if coords.len() > 1 && coords.first() == coords.last() {
        coords.pop();
    }
    if coords.len() < 3 {
        return Err(format!("{field}: a ring needs at least 3 distinct points"));
    }
    // `LineString` closes itself when it becomes a polygon ring.
    Ok(LineString::new(coords))
}

/// Validates `polygons` (at least `min` of them) into areas. Reasons name the field and the
/// polygon's position, never coordinates.
pub fn parse_polygons(
    field: &str,
    polygons: &[RingsIn],
    min: usize,
    limits: AreaLimits,
) -> Result<Vec<Area>, String> {
    if polygons.len() < min || polygons.len() > limits.max_polygons {
        return Err(format!(
            "{field} must hold {min}..={} polygons",
            limits.max_polygons
        ));
    }
    let vertices: usize = polygons.iter().flatten().map(Vec::len).sum();
    if vertices > limits.max_vertices {
        return Err(format!(
            "{field} has more than {} vertices in all",
            limits.max_vertices
        ));
    }
    polygons
        .iter()
        .enumerate()
        .map(|(i, rings)| {
            let name = format!("{field}[{i}]");
            let (outer, holes) = rings
                .split_first()
                .ok_or_else(|| format!("{name}: a polygon needs a boundary ring"))?;
            let outer = ring(&name, outer)?;
            let holes = holes
                .iter()
                .map(|h| ring(&name, h))
                .collect::<Result<Vec<_>, _>>()?;
            let polygon = Polygon::new(outer, holes);
            let area_km2 = polygon.chamberlain_duquette_unsigned_area() / 1e6;
            // Degenerate (collinear) rings have no planar area; the spherical formula is not
            // exactly zero for them.
            if !(area_km2.is_finite() && area_km2 > 0.0 && polygon.unsigned_area() > 0.0) {
                return Err(format!("{name}: the polygon has no area"));
            }
            let mut bbox = BBox {
                min_lat: f64::INFINITY,
                max_lat: f64::NEG_INFINITY,
                min_lon: f64::INFINITY,
                max_lon: f64::NEG_INFINITY,
            };
            for c in polygon.exterior().coords() {
                bbox.min_lat = bbox.min_lat.min(c.y);
                bbox.max_lat = bbox.max_lat.max(c.y);
                bbox.min_lon = bbox.min_lon.min(c.x);
                bbox.max_lon = bbox.max_lon.max(c.x);
            }
            Ok(Area {
                polygon,
                bbox,
                area_km2,
            })
        })
        .collect()
}

/// A configured sensitive location as written in `PLATEWATCH_SENSITIVE_LOCATIONS`: a name and
/// either a point with a radius or a polygon ring of `[lat, lon]` pairs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SensitiveLocationIn {
    pub name: String,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    #[serde(default)]
    pub radius_m: Option<f64>,
    #[serde(default)]
    pub polygon: Option<Vec<[f64; 2]>>,
}

/// Where a sensitive location is.
#[derive(Debug, Clone)]
pub enum Place {
    Circle { lat: f64, lon: f64, radius_m: f64 },
    Polygon(Polygon<f64>),
}

/// A place whose queries are flagged in the audit log (a clinic, a place of worship, …).
#[derive(Debug, Clone)]
pub struct SensitiveLocation {
    pub name: String,
    pub place: Place,
}

impl SensitiveLocation {
    /// Validates one configured location.
    pub fn parse(input: &SensitiveLocationIn) -> Result<Self, String> {
        let name = input.name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err("a sensitive location needs a name of 1..=200 bytes".into());
        }
        let place = match (input.lat, input.lon, input.radius_m, &input.polygon) {
            (Some(lat), Some(lon), Some(radius_m), None) => {
                let c = coord(name, [lat, lon])?;
                if !(radius_m.is_finite() && radius_m > 0.0 && radius_m <= 1_000_000.0) {
                    return Err(format!("{name}: radius_m must be in (0, 1000000]"));
                }
                Place::Circle {
                    lat: c.y,
                    lon: c.x,
                    radius_m,
                }
            }
            (None, None, None, Some(points)) => {
                Place::Polygon(Polygon::new(ring(name, points)?, Vec::new()))
            }
            _ => {
                return Err(format!(
                    "{name}: give either lat, lon and radius_m, or polygon"
                ));
            }
        };
        Ok(Self {
            name: name.to_string(),
            place,
        })
    }

    /// Parses the JSON list of `PLATEWATCH_SENSITIVE_LOCATIONS`.
    pub fn parse_list(json: &str) -> Result<Vec<Self>, String> {
        let list: Vec<SensitiveLocationIn> =
            serde_json::from_str(json).map_err(|e| format!("not a JSON list of locations: {e}"))?;
        list.iter().map(Self::parse).collect()
    }

    /// Whether `area` overlaps this location (a circle: comes within its radius).
    pub fn touches(&self, area: &Area) -> bool {
        match &self.place {
            Place::Polygon(p) => p.intersects(&area.polygon),
            Place::Circle { lat, lon, radius_m } => {
                // Equirectangular projection around the centre: metres, exact enough for radii
                // of a few kilometres.
                let k = lat.to_radians().cos();
                let project = |c: &Coord<f64>| {
                    let mut dlon = c.x - lon;
                    if dlon > 180.0 {
                        dlon -= 360.0;
                    } else if dlon < -180.0 {
                        dlon += 360.0;
                    }
                    Coord {
                        x: dlon.to_radians() * EARTH_RADIUS_M * k,
                        y: (c.y - lat).to_radians() * EARTH_RADIUS_M,
                    }
                };
                let ring = |ls: &LineString<f64>| ls.coords().map(project).collect::<LineString>();
                let local = Polygon::new(
                    ring(area.polygon.exterior()),
                    area.polygon.interiors().iter().map(ring).collect(),
                );
                Euclidean.distance(&Point::new(0.0, 0.0), &local) <= *radius_m
            }
        }
    }
}

/// Why a query's areas were flagged for review; stored in the audit row's criteria.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AreaFlags {
    /// Total area of the query's polygons, km².
    pub area_km2: f64,
    /// The total exceeds the configured threshold.
    pub large_area: bool,
    /// Names of the sensitive locations the polygons touch.
    pub sensitive_locations: Vec<String>,
}

impl AreaFlags {
    pub fn flagged(&self) -> bool {
        self.large_area || !self.sensitive_locations.is_empty()
    }
}

/// The flags for `areas` given the area threshold (km²) and the sensitive locations.
pub fn flags(areas: &[Area], flag_area_km2: f64, sensitive: &[SensitiveLocation]) -> AreaFlags {
    let area_km2: f64 = areas.iter().map(|a| a.area_km2).sum();
    let sensitive_locations = sensitive
        .iter()
        .filter(|s| areas.iter().any(|a| s.touches(a)))
        .map(|s| s.name.clone())
        .collect();
    AreaFlags {
        // Rounded so the canonical criteria stay short and stable.
        area_km2: (area_km2 * 1000.0).round() / 1000.0,
        large_area: area_km2 > flag_area_km2,
        sensitive_locations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: AreaLimits = AreaLimits {
        max_polygons: 10,
        max_vertices: 100,
    };

    fn square(lat: f64, lon: f64, half: f64) -> RingsIn {
        vec![vec![
            [lat - half, lon - half],
            [lat - half, lon + half],
            [lat + half, lon + half],
            [lat + half, lon - half],
            [lat - half, lon - half],
        ]]
    }

    #[test]
    fn squares_contain_their_inside_and_boundary_only() {
        let a = parse_polygons("polygons", &[square(10.0, 20.0, 0.5)], 1, LIMITS)
            .expect("valid")
            .remove(0);
        assert!(a.contains(10.0, 20.0));
        assert!(a.contains(10.5, 20.0), "boundary counts");
        assert!(!a.contains(10.6, 20.0));
        assert!(!a.contains(10.0, 19.4));
        // About 111 km x 109 km at 10 degrees north.
        assert!((11_000.0..13_000.0).contains(&a.area_km2), "{}", a.area_km2);
    }

    #[test]
    fn holes_are_outside() {
        let mut rings = square(0.0, 0.0, 1.0);
        rings.push(square(0.0, 0.0, 0.25).remove(0));
        let a = parse_polygons("p", &[rings], 1, LIMITS)
            .expect("valid")
            .remove(0);
        assert!(!a.contains(0.0, 0.0));
        assert!(a.contains(0.5, 0.5));
    }

    #[test]
    fn invalid_polygons_are_refused_with_a_reason() {
        let bad: Vec<(Vec<RingsIn>, &str)> = vec![
            (vec![], "1..=10 polygons"),
            (vec![vec![]], "boundary ring"),
            (vec![vec![vec![[0.0, 0.0], [1.0, 1.0]]]], "3 distinct"),
            (
                vec![vec![vec![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]]],
                "no area",
            ),
            (vec![square(95.0, 0.0, 1.0)], "latitudes"),
            (vec![square(0.0, 180.0, 1.0)], "longitudes"),
            (vec![square(0.0, 0.0, 1.0); 11], "1..=10 polygons"),
            (vec![vec![vec![[0.0, 0.0]; 101]]], "vertices"),
        ];
        for (polys, want) in bad {
            let e = parse_polygons("polygons", &polys, 1, LIMITS).expect_err(want);
            assert!(e.contains(want), "{e:?} should mention {want:?}");
        }
    }

    #[test]
    fn sensitive_locations_flag_touching_areas() {
        let list = SensitiveLocation::parse_list(
            r#"[{"name": "clinic", "lat": 10.0, "lon": 20.6, "radius_m": 2000},
                {"name": "shelter", "polygon": [[11, 21], [11, 21.1], [11.1, 21.1]]}]"#,
        )
        .expect("valid list");
        let a = parse_polygons("p", &[square(10.0, 20.0, 0.5)], 1, LIMITS).expect("valid");
        // The clinic is 0.1 degrees (about 11 km) east of the square: outside 2 km.
        let f = flags(&a, 100_000.0, &list);
        assert!(!f.flagged(), "{f:?}");
        let near =
            parse_polygons("p", &[square(10.0, 20.09, 0.5)], 1, LIMITS).expect("valid square");
        let f = flags(&near, 100_000.0, &list);
        assert_eq!(f.sensitive_locations, vec!["clinic".to_string()]);
        let over = parse_polygons("p", &[square(11.0, 21.0, 0.2)], 1, LIMITS).expect("valid");
        let f = flags(&over, 100.0, &list);
        assert_eq!(f.sensitive_locations, vec!["shelter".to_string()]);
        assert!(f.large_area);
        assert!(SensitiveLocation::parse_list(r#"[{"name": "x", "lat": 1}]"#).is_err());
        assert!(SensitiveLocation::parse_list(r#"[{"name": "x", "zone": 1}]"#).is_err());
    }
}
