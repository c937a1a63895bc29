def test_placeholder():
    import dagster
