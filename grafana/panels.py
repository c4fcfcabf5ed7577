"""Panel, variable, link and annotation builders both dashboards are made of."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from exporter.classify import RESULTS, Result, Validity
from grafana import runbook
from grafana.identifiers import DETAIL_UID, OVERVIEW_UID
from grafana.promql import with_mapped_label

PanelBuilder = cogbuilder.Builder[dashboard_models.Panel]
LinkBuilder = cogbuilder.Builder[dashboard_models.DashboardLink]
AnnotationBuilderType = cogbuilder.Builder[dashboard_models.AnnotationQuery]

DATASOURCE = dashboard_models.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAGS = ["openai", "openai-key-exporter"]

# Colours by what a result says: the key is bad, the key is fine but unusable, or we cannot tell.
_VALIDITY_COLORS = {Validity.INVALID: "red", Validity.VALID: "orange", Validity.UNKNOWN: "yellow"}


# Queries ------------------------------------------------------------------------------------


def range_query(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).range()


def instant_table_query(expr: str, ref_id: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(expr)
        .ref_id(ref_id)
        .instant()
        .format(PromQueryFormat.TABLE)
        .legend_format("__auto")
    )


def instant_query(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).instant()


def with_result_runbook(expr: str, result_label: str, runbook_label: str) -> str:
    """Add the runbook section of each series' result class as label `runbook_label`."""
    fragments = {result: runbook.fragment(a) for result, a in runbook.result_anchors().items()}
    default = runbook.fragment(runbook.GENERAL_ANCHOR)
    return with_mapped_label(expr, result_label, runbook_label, fragments, default)


def with_code_runbook(expr: str, runbook_label: str) -> str:
    """Add the runbook section of each series' error code as label `runbook_label`."""
    fragments = {code: runbook.fragment(a) for code, a in runbook.code_anchors().items()}
    default = runbook.fragment(runbook.GENERAL_ANCHOR)
    return with_mapped_label(expr, "code", runbook_label, fragments, default)


# Field configuration --------------------------------------------------------------------------


def thresholds(base: str, *steps: tuple[float, str]) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard_models.ThresholdsMode.ABSOLUTE)
        .steps(
            [dashboard_models.Threshold(value=None, color=base)]
            + [dashboard_models.Threshold(value=value, color=color) for value, color in steps]
        )
    )


def result_mappings() -> list[dashboard_models.ValueMapping]:
    """Every result class shown as itself, coloured by what it says about the key."""
    options = {
        result.value: dashboard_models.ValueMappingResult(
            text=result.value,
            color="green" if result is Result.OK else _VALIDITY_COLORS[info.validity],
            index=index,
        )
        for index, (result, info) in enumerate(RESULTS.items())
    }
    # A class added to the exporter after this dashboard was generated still shows as failing.
    unknown = dashboard_models.RegexMap(
        options=dashboard_models.DashboardRegexMapOptions(
            pattern=".+",
            result=dashboard_models.ValueMappingResult(color="red", index=len(options)),
        )
    )
    return [dashboard_models.ValueMap(options=options), unknown]


def valid_mappings() -> list[dashboard_models.ValueMapping]:
    return [
        dashboard_models.ValueMap(
            options={
                "1": dashboard_models.ValueMappingResult(text="valid", color="green", index=0),
                "0": dashboard_models.ValueMappingResult(text="INVALID", color="red", index=1),
            }
        )
    ]


def listed_mappings() -> list[dashboard_models.ValueMapping]:
    """openai_model_listed: whether the key's model list holds the model."""
    return [
        dashboard_models.ValueMap(
            options={
                "1": dashboard_models.ValueMappingResult(text="listed", color="green", index=0),
                "0": dashboard_models.ValueMappingResult(text="NOT LISTED", color="red", index=1),
            }
        )
    ]


def never_mapping(color: str = "red") -> dashboard_models.ValueMapping:
    """An age with no timestamp behind it: the probe never succeeded since the exporter started."""
    return dashboard_models.SpecialValueMap(
        options=dashboard_models.DashboardSpecialValueMapOptions(
            match=dashboard_models.SpecialValueMatch.NULL,
            result=dashboard_models.ValueMappingResult(text="never", color=color, index=0),
        )
    )


def age_thresholds() -> dashboard_builders.ThresholdsConfig:
    return thresholds("green", (300, "orange"), (900, "red"))


def data_link(title: str, url: str) -> dict[str, object]:
    return {"title": title, "url": url, "targetBlank": True}


def detail_link(key_expr: str) -> dict[str, object]:
    """Link to the key detail dashboard for one key, keeping time range, datasource and job."""
    return {
        "title": "Key detail",
        "url": (
            f"/d/{DETAIL_UID}/openai-key-detail?var-key={key_expr}"
            "&${datasource:queryparam}&${job:queryparam}&${__url_time_range}"
        ),
    }


def override(
    name: str, **properties: object
) -> dashboard_builders.DashboardFieldConfigSourceOverrides:
    """Field override by name; property ids use Grafana's dotted form (`custom.cellOptions`)."""
    return (
        dashboard_builders.DashboardFieldConfigSourceOverrides()
        .matcher(dashboard_models.MatcherConfig(id_val="byName", options=name))
        .properties(
            [
                dashboard_models.DynamicConfigValue(id_val=prop.replace("__", "."), value=value)
                for prop, value in properties.items()
            ]
        )
    )


COLOR_BACKGROUND = {"type": "color-background", "mode": "basic"}


# Panels ---------------------------------------------------------------------------------------


def timeseries_panel(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    unit: str,
    *,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    bars: bool = False,
    min_value: float | None = 0,
    max_value: float | None = None,
    panel_thresholds: dashboard_builders.ThresholdsConfig | None = None,
    runbook_anchors: Sequence[str] = (),
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .unit(unit)
        .span(width)
        .height(height)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .fill_opacity(30 if stacked or bars else 10)
        .line_width(1)
        .show_points(common.VisibilityMode.NEVER)
    )
    if min_value is not None:
        panel = panel.min(min_value)
    if max_value is not None:
        panel = panel.max(max_value)
    if stacked:
        panel = panel.stacking(
            common_builders.StackingConfig().mode(common.StackingMode.NORMAL).group("A")
        )
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS)
    panel = panel.thresholds(panel_thresholds or thresholds("green"))
    if runbook_anchors:
        panel = panel.links(runbook_links(*runbook_anchors))
    return panel


def stat_panel(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    unit: str = "none",
    width: int = 4,
    height: int = 4,
    panel_thresholds: dashboard_builders.ThresholdsConfig | None = None,
    mappings: list[dashboard_models.ValueMapping] | None = None,
    text_field: str | None = None,
    max_values: int = 1,
    no_value: str | None = None,
    links: list[dict[str, object]] | None = None,
    runbook_anchors: Sequence[str] = (),
) -> stat.Panel:
    """A stat; with `text_field`, it shows that label of an instant table query as text (up to
    `max_values` rows of it)."""
    reduce = common_builders.ReduceDataOptions().calcs(["lastNotNull"])
    if text_field is not None:
        # values=True keeps the row, so data links can read the row's other labels.
        reduce = reduce.values(True).limit(max_values).fields(f"/^{text_field}$/")
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .unit(unit)
        .span(width)
        .height(height)
        .reduce_options(reduce)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE)
        .thresholds(panel_thresholds or thresholds("green"))
    )
    if mappings:
        panel = panel.mappings(mappings)
    if no_value is not None:
        panel = panel.no_value(no_value)
    if links:
        panel = panel.overrides(
            [
                dashboard_builders.DashboardFieldConfigSourceOverrides()
                .matcher(dashboard_models.MatcherConfig(id_val="byRegexp", options=".*"))
                .properties([dashboard_models.DynamicConfigValue(id_val="links", value=links)])
            ]
        )
    if runbook_anchors:
        panel = panel.links(runbook_links(*runbook_anchors))
    return panel


def table_panel(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    width: int = 24,
    height: int = 8,
    runbook_anchors: Sequence[str] = (),
) -> table.Panel:
    """A table of instant queries merged into one row per common label set."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .span(width)
        .height(height)
        .cell_height(common.TableCellHeight.SM)
        .footer(common_builders.TableFooterOptions().show(False).reducer(["sum"]))
        .show_header(True)
        .thresholds(thresholds("green"))
        .align(common.FieldTextAlignment.AUTO)
        .cell_options(common.TableAutoCellOptions())
        .inspect(False)
        .with_transformation(dashboard_models.DataTransformerConfig(id_val="merge", options={}))
    )
    if runbook_anchors:
        panel = panel.links(runbook_links(*runbook_anchors))
    return panel


def organize(
    order: Sequence[str], renames: dict[str, str], hidden: Sequence[str]
) -> dashboard_models.DataTransformerConfig:
    """Column order, names and the columns dropped (dropped ones cannot feed data links)."""
    return dashboard_models.DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": dict.fromkeys(hidden, True),
            "indexByName": {name: index for index, name in enumerate(order)},
            "renameByName": renames,
        },
    )


def runbook_links(*anchors: str) -> list[LinkBuilder]:
    """Panel links (the panel header's link menu) to runbook sections."""
    return [
        dashboard_builders.DashboardLink(f"Runbook: {anchor}")
        .url(runbook.link(anchor))
        .target_blank(True)
        for anchor in anchors
    ]


def row(title: str) -> dashboard_builders.Row:
    return dashboard_builders.Row(title).collapsed(False)


# Dashboard-level pieces -----------------------------------------------------------------------


def datasource_variable() -> dashboard_builders.DatasourceVariable:
    return (
        dashboard_builders.DatasourceVariable("datasource")
        .label("Data source")
        .description("The Prometheus that scrapes openai-key-exporter.")
        .type("prometheus")
    )


def job_variable() -> dashboard_builders.QueryVariable:
    return (
        dashboard_builders.QueryVariable("job")
        .label("Job")
        .description("Prometheus jobs that scrape openai-key-exporter.")
        .datasource(DATASOURCE)
        .query("label_values(openai_key_exporter_build_info, job)")
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def key_variable(*, multi: bool) -> dashboard_builders.QueryVariable:
    variable = (
        dashboard_builders.QueryVariable("key")
        .label("Key")
        .description("Key names from the exporter's configuration (never the keys themselves).")
        .datasource(DATASOURCE)
        .query('label_values(openai_key_info{job=~"$job"}, key)')
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        variable = variable.multi(True).include_all(True).all_value(".*")
    return variable


def runbook_variable(url: str) -> dashboard_builders.ConstantVariable:
    return (
        dashboard_builders.ConstantVariable(runbook.RUNBOOK_VARIABLE)
        .label("Runbook")
        .description("Base address of docs/runbook.md; every runbook link starts here.")
        .value(url)
    )


def dashboard_links(this_uid: str) -> list[LinkBuilder]:
    other_uid, other_title = (
        (DETAIL_UID, "OpenAI key detail")
        if this_uid == OVERVIEW_UID
        else (OVERVIEW_UID, "OpenAI keys overview")
    )
    return [
        dashboard_builders.DashboardLink(other_title)
        .type(dashboard_models.DashboardLinkType.LINK)
        .url(f"/d/{other_uid}")
        .icon("dashboard")
        .tooltip(f"Open the {other_title} dashboard")
        .include_vars(True)
        .keep_time(True)
        .target_blank(False)
        .as_dropdown(False)
        .tags([]),
        dashboard_builders.DashboardLink("Runbook")
        .type(dashboard_models.DashboardLinkType.LINK)
        .url(f"${{{runbook.RUNBOOK_VARIABLE}}}")
        .icon("doc")
        .tooltip("What each result means and how to fix it")
        .include_vars(False)
        .keep_time(False)
        .target_blank(True)
        .as_dropdown(False)
        .tags([]),
    ]


class PrometheusAnnotation(dashboard_models.AnnotationQuery):
    """A Prometheus annotation with the fields Grafana reads that the SDK model lacks.

    Grafana's Prometheus datasource reads `step`, `titleFormat`, `textFormat`, `tagKeys` and
    `useValueForTime` from the annotation itself; the SDK keeps only `expr`.
    """

    SDK_MISSING_FIELDS = ("step", "titleFormat", "textFormat", "tagKeys", "useValueForTime")

    def __init__(self, *, title: str, text: str, tags: str, step: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.title_format = title
        self.text_format = text
        self.tag_keys = tags
        self.step = step

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update(
            {
                "step": self.step,
                "titleFormat": self.title_format,
                "textFormat": self.text_format,
                "tagKeys": self.tag_keys,
                "useValueForTime": False,
            }
        )
        return payload


class AnnotationBuilder(dashboard_builders.AnnotationQuery):
    def __init__(self, annotation: PrometheusAnnotation) -> None:
        self._internal = annotation


def base_dashboard(
    title: str, uid: str, description: str, *, multi_key: bool, runbook_url: str
) -> dashboard_builders.Dashboard:
    """What both dashboards share: variables, links, annotations, time and refresh settings."""
    key_matcher = 'key=~"$key"' if multi_key else 'key="$key"'
    return (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .with_variable(datasource_variable())
        .with_variable(job_variable())
        .with_variable(key_variable(multi=multi_key))
        .with_variable(runbook_variable(runbook_url))
        .links(dashboard_links(uid))
        .annotations(key_annotations(key_matcher))
    )


def key_annotations(key_matcher: str) -> list[AnnotationBuilderType]:
    """Key rotations (a new fingerprint for a key that existed before) and keys turning invalid."""
    info = f'openai_key_info{{job=~"$job", {key_matcher}}}'
    valid = f'openai_key_valid{{job=~"$job", {key_matcher}}}'
    rotated = (
        f"({info} unless on (job, instance, key, fingerprint) ({info} offset 2m))"
        f" and on (job, instance, key) ({info} offset 2m)"
    )
    turned_invalid = f"({valid} == 0) unless on (job, instance, key) ({valid} offset 2m == 0)"
    return [
        AnnotationBuilder(
            PrometheusAnnotation(
                name="Key rotated",
                datasource=DATASOURCE,
                enable=True,
                hide=False,
                icon_color="blue",
                expr=rotated,
                title="Key {{key}} rotated",
                text="New fingerprint {{fingerprint}}",
                tags="key,fingerprint",
                step="60s",
            )
        ),
        AnnotationBuilder(
            PrometheusAnnotation(
                name="Key turned invalid",
                datasource=DATASOURCE,
                enable=True,
                hide=False,
                icon_color="red",
                expr=turned_invalid,
                title="Key {{key}} turned invalid",
                text="openai_key_valid went to 0; see the runbook section key-invalid",
                tags="key",
                step="60s",
            )
        ),
    ]
