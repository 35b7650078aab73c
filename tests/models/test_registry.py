import pytest

from keras_cvlec.models.registry import TASKS, build_model, list_models, model_task


def test_models_are_listed_by_task():
    classification = list_models("classification")
    segmentation = list_models("segmentation")
    assert "resnet50" in classification and "convnext_tiny" in classification
    assert segmentation == ["fcn16s", "fcn32s", "fcn8s", "segnet", "unet"]
    assert list_models("reconstruction") == ["autoencoder"]
    assert sorted(sum((list_models(task) for task in TASKS), [])) == list_models()
    assert model_task("unet") == "segmentation" and model_task("resnet18") == "classification"


def test_unknown_names_and_tasks_are_refused():
    with pytest.raises(ValueError, match="Unknown model name: 'vgg16'.*resnet18"):
        model_task("vgg16")
    with pytest.raises(ValueError, match="Unknown model name: 'vgg16'"):
        build_model("vgg16")
    with pytest.raises(ValueError, match="task=.*detection"):
        list_models("detection")
