"""KMeans customer segments: k chosen by silhouette and stability, names true of the members (see
segment_names.py; clusters with the same name are one segment), ids kept stable across runs by matching
segment centroids to the previous run's (Hungarian algorithm)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, silhouette_score
from threadpoolctl import threadpool_limits

from ml.config import SegmentationConfig
from ml.features import KEY, FeatureError, FeatureTransform, fit_feature_transform
from ml.segment_names import cluster_names


@dataclass
class SegmentationModel:
    """Everything needed to assign a customer to a segment; stored as the joblib artefact."""

    transform: FeatureTransform
    pca: PCA | None
    kmeans: KMeans
    segment_ids: np.ndarray
    """Stable segment id of each KMeans cluster index (merged clusters share one)."""
    segment_names: list[str]
    config: SegmentationConfig

    def project(self, frame: pd.DataFrame) -> np.ndarray:
        return project(self.transform.transform(frame), self.pca)

    def segments(self) -> tuple[np.ndarray, list[str], np.ndarray]:
        """The distinct segment ids (sorted), their names, and each cluster's position among them."""
        ids, segment_of_cluster = np.unique(self.segment_ids, return_inverse=True)
        names = [self.segment_names[int(np.flatnonzero(segment_of_cluster == s)[0])] for s in range(len(ids))]
        return ids, names, segment_of_cluster

    def segment_positions(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's position among `segments()` ids (nearest centroid, merged clusters together)."""
        clusters, _, _ = nearest_centroids(self.kmeans, self.project(frame))
        return self.segments()[2][clusters]

    def assign(self, frame: pd.DataFrame) -> pd.DataFrame:
        clusters, distance, confidence = nearest_centroids(self.kmeans, self.project(frame))
        return pd.DataFrame(
            {
                KEY: frame[KEY].to_numpy(),
                "segment_id": self.segment_ids[clusters],
                "segment_name": np.asarray(self.segment_names, dtype=object)[clusters],
                "distance": distance,
                "confidence": confidence,
            }
        )


@dataclass
class SegmentationResult:
    model: SegmentationModel
    assignments: pd.DataFrame
    """customer_key, segment_id, segment_name, distance, confidence"""
    profiles: pd.DataFrame
    """segment_id, segment_name, size, share, then the centroid in each feature's own units"""
    k_scores: pd.DataFrame
    metrics: dict[str, Any] = field(default_factory=dict)


def fit_projection(scaled: np.ndarray, variance: float | None, random_state: int) -> PCA | None:
    """PCA keeping `variance` of the variance (None: no PCA)."""
    if variance is None:
        return None
    pca = PCA(n_components=variance, svd_solver="full", random_state=random_state)
    pca.fit(scaled)
    return pca


def project(scaled: np.ndarray, pca: PCA | None) -> np.ndarray:
    return scaled if pca is None else pca.transform(scaled)


def sample_indices(n_rows: int, size: int, rng: np.random.Generator) -> np.ndarray:
    if n_rows <= size:
        return np.arange(n_rows)
    return np.sort(rng.choice(n_rows, size=size, replace=False))


def score_k_range(points: np.ndarray, config: SegmentationConfig) -> pd.DataFrame:
    """For every k in the range: silhouette on a sample, inertia, and subsample stability (mean ARI
    between two KMeans fits on different random subsamples, compared on all sampled points)."""
    rng = np.random.default_rng(config.random_state)
    sample = points[sample_indices(len(points), config.selection_sample_size, rng)]
    silhouette_points = sample[: config.silhouette_sample_size]
    k_max = min(config.k_max, len(sample) - 1)
    rows = []
    for k in range(config.k_min, k_max + 1):
        full = _kmeans(k, config.random_state, 1).fit(sample)
        labels = full.predict(silhouette_points)
        silhouette = (
            float(silhouette_score(silhouette_points, labels)) if len(set(labels)) > 1 else float("nan")
        )
        aris = []
        for round_index in range(config.stability_rounds):
            fits = []
            for side in range(2):
                subsample = sample_indices(len(sample), int(len(sample) * config.stability_subsample), rng)
                seed = config.random_state + 1000 * (round_index + 1) + side
                fits.append(_kmeans(k, seed, 1).fit(sample[subsample]).predict(sample))
            aris.append(adjusted_rand_score(fits[0], fits[1]))
        rows.append(
            {
                "k": k,
                "silhouette": silhouette,
                "stability": float(np.mean(aris)) if aris else float("nan"),
                "inertia": float(full.inertia_),
            }
        )
    if not rows:
        raise FeatureError(f"too few customers ({len(points)}) to try k >= {config.k_min}")
    return pd.DataFrame(rows)


def choose_k(k_scores: pd.DataFrame, min_stability: float) -> int:
    """Best silhouette among the k that are stable enough; if none is, the most stable k."""
    stable = k_scores[k_scores["stability"] >= min_stability]
    if stable.empty:
        return int(k_scores.sort_values(["stability", "k"], ascending=[False, True]).iloc[0]["k"])
    return int(stable.sort_values(["silhouette", "k"], ascending=[False, True]).iloc[0]["k"])


def readable_centroids(original: pd.DataFrame) -> pd.DataFrame:
    """Centroids for people: float noise rounded away, no negatives from expm1, and no 'days since last
    order' for segments whose typical customer never ordered (that value is only the fill for nulls)."""
    readable = original.clip(lower=0).round(4)
    if "recency_days" in readable and "frequency" in readable:
        readable.loc[readable["frequency"] < 0.5, "recency_days"] = np.nan
    return readable


def nearest_centroids(kmeans: KMeans, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster index, distance to its centroid, and confidence = 1 - nearest / second-nearest distance."""
    distances = kmeans.transform(points)
    order = np.argsort(distances, axis=1)
    nearest = order[:, 0]
    rows = np.arange(len(points))
    first = distances[rows, nearest]
    if distances.shape[1] < 2:
        return nearest, first, np.ones(len(points))
    second = distances[rows, order[:, 1]]
    confidence = np.where(second > 0, 1.0 - first / np.maximum(second, 1e-12), 0.0)
    return nearest, first, np.clip(confidence, 0.0, 1.0)


def profile_frame(
    ids: Any, names: Any, sizes: np.ndarray, customers: int, original: pd.DataFrame
) -> pd.DataFrame:
    """ml.segment_profiles rows: id, name, size, share, then the readable centroid of each segment."""
    frame = pd.DataFrame(
        {
            "segment_id": ids,
            "segment_name": names,
            "size": sizes.astype(np.int64),
            "share": sizes / max(customers, 1),
        }
    )
    profiles = pd.concat([frame, readable_centroids(original)], axis=1)
    return profiles.sort_values("segment_id", ignore_index=True)


def member_centroids(scaled: np.ndarray, clusters: np.ndarray, k: int) -> np.ndarray:
    """Mean of each cluster's members in scaled units (zeros for an empty cluster)."""
    sizes = np.bincount(clusters, minlength=k)
    return np.vstack(
        [scaled[clusters == c].mean(axis=0) if sizes[c] else np.zeros(scaled.shape[1]) for c in range(k)]
    )


def match_segment_ids(
    current: np.ndarray,
    previous: np.ndarray | None,
    previous_ids: np.ndarray | None,
    sizes: np.ndarray,
    max_distance: float,
) -> np.ndarray:
    """Stable ids: each current centroid takes the id of the previous-run centroid it is matched to
    (minimum total distance, Hungarian) if within `max_distance`; the rest get fresh ids, larger
    clusters first. Without a previous run, ids are 1..k by decreasing size."""
    ids = np.zeros(len(current), dtype=np.int64)
    unmatched = list(range(len(current)))
    next_id = 1
    if previous is not None and previous_ids is not None and len(previous):
        cost = np.linalg.norm(current[:, None, :] - previous[None, :, :], axis=2)
        rows, cols = linear_sum_assignment(cost)
        for row, col in zip(rows, cols, strict=True):
            if cost[row, col] <= max_distance:
                ids[row] = int(previous_ids[col])
                unmatched.remove(row)
        next_id = int(np.max(previous_ids)) + 1
    for row in sorted(unmatched, key=lambda row: (-sizes[row], row)):
        ids[row] = next_id
        next_id += 1
    return ids


def count_moved(previous: pd.DataFrame | None, current: pd.DataFrame) -> dict[str, int]:
    """Customers present in both runs whose segment id changed (and how many were compared)."""
    if previous is None or previous.empty:
        return {"compared": 0, "moved": 0}
    both = current[[KEY, "segment_id"]].merge(
        previous[[KEY, "segment_id"]], on=KEY, suffixes=("", "_previous")
    )
    return {"compared": len(both), "moved": int((both["segment_id"] != both["segment_id_previous"]).sum())}


def fit_segments(
    features: pd.DataFrame,
    config: SegmentationConfig | None = None,
    previous_profiles: pd.DataFrame | None = None,
    previous_assignments: pd.DataFrame | None = None,
) -> SegmentationResult:
    """Fit the whole segmentation on the features mart and assign every customer.

    `previous_profiles` (segment_id + centroid columns in original units) and `previous_assignments`
    (customer_key, segment_id) come from the last run, to keep ids stable and count movers."""
    config = config or SegmentationConfig()
    with threadpool_limits(limits=config.n_threads, user_api="openmp"):
        return _fit_segments(features, config, previous_profiles, previous_assignments)


def _fit_segments(
    features: pd.DataFrame,
    config: SegmentationConfig,
    previous_profiles: pd.DataFrame | None,
    previous_assignments: pd.DataFrame | None,
) -> SegmentationResult:
    if features[KEY].duplicated().any():
        duplicated = features.loc[features[KEY].duplicated(), KEY].head(5).tolist()
        raise FeatureError(f"{KEY} must be unique in the features table; duplicated: {duplicated}")
    transform = fit_feature_transform(features, config.features, config.log_features)
    scaled = transform.transform(features)
    rng = np.random.default_rng(config.random_state)
    fit_rows = sample_indices(len(scaled), config.fit_sample_size, rng)
    pca = fit_projection(scaled[fit_rows], config.pca_variance, config.random_state)
    points = project(scaled, pca)

    k_scores = score_k_range(points[fit_rows], config)
    k = choose_k(k_scores, config.min_stability)
    kmeans = _kmeans(k, config.random_state, config.n_init).fit(points[fit_rows])
    clusters, distance, confidence = nearest_centroids(kmeans, points)

    # Clusters the present signals cannot tell apart share a name: they are one segment.
    names = cluster_names(features, clusters, k, config.naming)
    segment_names = list(dict.fromkeys(names))
    segment_of_cluster = np.array([segment_names.index(name) for name in names], dtype=np.int64)
    segments = segment_of_cluster[clusters]
    sizes = np.bincount(segments, minlength=len(segment_names))
    scaled_centroids = member_centroids(scaled, segments, len(segment_names))
    original = transform.to_original_units(scaled_centroids)

    previous_scaled, previous_ids = None, None
    if (
        previous_profiles is not None
        and not previous_profiles.empty
        and set(config.features) <= set(previous_profiles.columns)
    ):
        # nulls (e.g. recency of a segment that never ordered) get the same fill as customers' nulls
        previous_scaled = transform.transform(previous_profiles)
        previous_ids = previous_profiles["segment_id"].to_numpy()
    ids = match_segment_ids(scaled_centroids, previous_scaled, previous_ids, sizes, config.max_match_distance)
    segment_ids = ids[segment_of_cluster]

    model = SegmentationModel(transform, pca, kmeans, segment_ids, names, config)
    assignments = pd.DataFrame(
        {
            KEY: features[KEY].to_numpy(),
            "segment_id": segment_ids[clusters],
            "segment_name": np.asarray(names, dtype=object)[clusters],
            "distance": distance,
            "confidence": confidence,
        }
    )
    profiles = profile_frame(ids, segment_names, sizes, len(features), original)

    chosen = k_scores.set_index("k").loc[k]
    moved = count_moved(previous_assignments, assignments)
    metrics: dict[str, Any] = {
        "customers": len(features),
        "k": k,
        "segments": len(segment_names),
        "silhouette": float(chosen["silhouette"]),
        "stability_ari": float(chosen["stability"]),
        "pca_components": int(pca.n_components_) if pca is not None else scaled.shape[1],
        "sizes": {str(i): int(size) for i, size in zip(ids, sizes, strict=True)},
        "k_scores": k_scores.round(4).to_dict(orient="records"),
        "matched_previous": int(np.isin(ids, previous_ids).sum()) if previous_ids is not None else 0,
        "moved_customers": moved["moved"],
        "compared_with_previous": moved["compared"],
    }
    return SegmentationResult(model, assignments, profiles, k_scores, metrics)


def _kmeans(k: int, seed: int, n_init: int) -> KMeans:
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed, max_iter=100)
