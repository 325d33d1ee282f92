"""The report's page: one self-contained HTML document (Jinja2, autoescaped), both languages
in it, the one not chosen hidden."""

PAGE = """<!doctype html>
<html lang="nl" data-lang="nl">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kring \u2014 {{ pages.nl.t("title") }}</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 70rem; padding: 1rem 2rem;
         color: #222; line-height: 1.4; }
  h1 { margin-bottom: 0; } .sub { color: #555; margin-top: .2rem; }
  .meta { color: #555; font-size: .9rem; }
  table { border-collapse: collapse; margin: 1rem 0; font-size: .95rem; }
  th, td { border-bottom: 1px solid #ddd; padding: .35rem .8rem; text-align: left; vertical-align: top; }
  td.n { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
  section.chart { margin: 2rem 0; } section.chart img { max-width: 100%; height: auto; }
  button.lang { float: right; margin-top: 1rem; }
  html[data-lang="nl"] .lang-en, html[data-lang="en"] .lang-nl { display: none; }
  .sources li { margin-bottom: .4rem; } .note { color: #444; max-width: 50rem; }
</style>
</head>
<body>
<button class="lang" type="button"
  onclick="var h=document.documentElement,e=h.dataset.lang==='nl'?'en':'nl';h.dataset.lang=e;h.lang=e;">
  <span class="lang-nl">English</span><span class="lang-en">Nederlands</span></button>
{% for lang in languages %}{% set p = pages[lang] %}
<div class="lang-{{ lang }}" lang="{{ lang }}">
<h1>{{ p.t("title") }}</h1>
<p class="sub">{{ p.t("subtitle") }}</p>
<p class="meta">{{ p.t("window") }}: <strong>{{ p.window }}</strong> \u00b7
  {{ p.t("read") }}: {{ events }} {{ p.t("events_up_to") }} {{ p.last_event }} \u00b7
  {{ erased }} {{ p.t("erased_left_out") }} \u00b7 {{ without_request }} {{ p.t("without_request") }}
  {% if undecodable %}\u00b7 {{ undecodable }} undecodable{% endif %} \u00b7 {{ p.t("made") }} {{ p.made }}</p>
<h2>{{ p.t("key_figures") }}</h2>
<table>
<tr><th>{{ p.t("figure") }}</th><th>{{ p.t("ours") }}</th><th>{{ p.t("reference") }}</th><th>{{ p.t("source") }}</th></tr>
{% for row in p.figures %}<tr><td>{{ row.figure }}</td><td class="n">{{ row.ours }}</td><td>{{ row.reference }}</td><td>{{ row.source }}</td></tr>
{% endfor %}</table>
{% if p.by %}<h2>{{ p.by }}</h2>
<table>
<tr><th>{{ p.t("group") }}</th><th>{{ p.t("requests") }}</th><th>{{ p.t("conference") }}</th><th>{{ p.t("plan_without_meeting") }}</th><th>{{ p.t("stopped") }}</th><th>{{ p.t("median_to_conference") }}</th><th>{{ p.t("mean_attended") }}</th><th>{{ p.t("rating_family_plan") }}</th><th>{{ p.t("rating_professional_plan") }}</th></tr>
{% for row in p.groups %}<tr><td>{{ row.group }}</td><td class="n">{{ row.requests }}</td><td class="n">{{ row.conference }}</td><td class="n">{{ row.plan_without_meeting }}</td><td class="n">{{ row.stopped }}</td><td class="n">{{ row.median }}</td><td class="n">{{ row.attended }}</td><td class="n">{{ row.family_network }}</td><td class="n">{{ row.professional }}</td></tr>
{% endfor %}</table>{% endif %}
{% for chart in p.charts %}<section class="chart" id="{{ chart.name }}-{{ lang }}">
<h2>{{ chart.title }}</h2>
<img src="{{ chart.src }}" alt="{{ chart.title }}">
</section>
{% endfor %}
<h2>{{ p.t("how_read") }}</h2>
<p class="note">{{ p.t("how_read_text") }}</p>
<h2>{{ p.t("sources") }}</h2>
<ol class="sources">{% for source in p.sources %}<li>{{ source }}</li>{% endfor %}</ol>
</div>
{% endfor %}
</body>
</html>
"""
